"""Several grid links as one (a vpp.grid.link.GridLink): the native MQTT contract beside
OpenADR 3.1 and 2.0b, as the site file's `grid:` names them.

Events from every link come in on one inbox. Each answer goes back on the link its event
came from: by the event id a link brought (the first link to bring an id owns it), and, for
an answer to a message without a usable id (a `rejected`), on the link of the message being
handled: the DR controller handles one message at a time and answers it before it reads the
next. Reports go to their event's link; telemetry goes to every link (each sends what its
protocol carries, or nothing). One link that fails to connect does not stop the others:
each link's `run()` reconnects on its own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import structlog

from vpp.grid.link import GridLink, InboundGridMessage
from vpp.grid.messages import Response

log = structlog.get_logger(__name__)


def _event_id(payload: bytes) -> str | None:
    """The message's `event_id` if it has a usable one (the message is validated later)."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    event_id = data.get("event_id") if isinstance(data, dict) else None
    return event_id if isinstance(event_id, str) else None


class FanoutLink:
    """`links` by name (for logs), the first one the default for answers with no owner."""

    def __init__(self, links: Mapping[str, GridLink]) -> None:
        if not links:
            raise ValueError("grid: no grid link configured (grid.mqtt is false and no OpenADR)")
        self.links = dict(links)
        self._default = next(iter(self.links))
        self._inbox: asyncio.Queue[tuple[str, InboundGridMessage]] = asyncio.Queue(maxsize=64)
        self._owner: dict[str, str] = {}
        self._current = self._default

    def link_of(self, event_id: str | None) -> str:
        """The name of the link that answers for `event_id`."""
        if event_id is not None and event_id in self._owner:
            return self._owner[event_id]
        return self._current

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for name, link in self.links.items():
                tg.create_task(link.run(), name=f"link-{name}")
                tg.create_task(self._pump(name, link), name=f"inbox-{name}")

    async def _pump(self, name: str, link: GridLink) -> None:
        # Each link keeps its own bounded inbox; this queue is small, so a busy link waits in
        # its own inbox rather than here.
        while True:
            msg = await link.receive()
            await self._inbox.put((name, msg))

    async def receive(self) -> InboundGridMessage:
        name, msg = await self._inbox.get()
        self._current = name
        event_id = _event_id(msg.payload)
        if event_id is not None:
            self._owner.setdefault(event_id, name)
        return msg

    def send_response(self, response: Response) -> None:
        self.links[self.link_of(response.event_id)].send_response(response)

    def send_report(self, report: dict[str, Any]) -> None:
        event_id = report.get("event_id")
        self.links[self.link_of(event_id if isinstance(event_id, str) else None)].send_report(
            report
        )

    def send_telemetry(self, telemetry: dict[str, Any]) -> None:
        for link in self.links.values():
            link.send_telemetry(telemetry)

    async def flush(self) -> None:
        await asyncio.gather(*(link.flush() for link in self.links.values()))

    async def close(self) -> None:
        results = await asyncio.gather(
            *(link.close() for link in self.links.values()), return_exceptions=True
        )
        for name, result in zip(self.links, results, strict=True):
            if isinstance(result, Exception):
                log.error("grid_link_close_failed", link=name, error=str(result))
