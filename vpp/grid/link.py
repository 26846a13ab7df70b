"""The seam between the agent and the grid: what the agent needs from any grid channel.

Events come in; responses, reports and telemetry go out; the link announces the site's
status itself (online while it runs, offline on `close()`, and whatever the protocol has for
a lost connection, e.g. MQTT's last will). Each protocol (our MQTT contract in
`vpp.mqtt_link`, later OpenADR 3.1 / 2.0b) is one implementation that maps these small
domain messages to its wire; events, reporting and the agent only see this protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from vpp.grid.messages import Response


@dataclass(frozen=True)
class InboundGridMessage:
    """An event message (create, modify or cancel) as the grid sent it, not yet validated
    (vpp.grid.parse does that); `origin` says where it came from on the link (the MQTT
    topic, an OpenADR endpoint), for logs and tests."""

    payload: bytes
    origin: str
    likely_event: bool = True
    """False when the link's triage found it cannot be a valid event (vpp.grid.inbox): it
    is still validated and answered, but at a capped rate."""
    dropped: int = 0
    """Messages the link dropped unread (its inbox full) since the one before this."""


def response_payload(response: Response) -> dict[str, Any]:
    """A response as the contract's JSON data: what the store keeps and the wire carries
    (`event_id` always present, null for a message that had none)."""
    payload = response.model_dump(mode="json", exclude_none=True)
    if "event_id" not in payload:
        payload["event_id"] = None
    return payload


class GridLink(Protocol):
    """A grid channel. The `send_*` calls queue and return at once; the link delivers in
    order, and again after a reconnect, while `run()` runs."""

    async def run(self) -> None:
        """Connect, announce online, serve and reconnect until cancelled."""
        ...

    async def receive(self) -> InboundGridMessage:
        """The next event message from the grid (waits for one)."""
        ...

    def send_response(self, response: Response) -> None:
        """Answer an event message (received, opt_in, opt_out, completed, rejected...)."""
        ...

    def send_report(self, report: dict[str, Any]) -> None:
        """A performance report in its full form (vpp.grid.messages.ExtendedReport data);
        the link sends what its protocol carries of it."""
        ...

    def send_telemetry(self, telemetry: dict[str, Any]) -> None:
        """The site's telemetry of one period (vpp.telemetry's message data)."""
        ...

    async def flush(self) -> None:
        """Let what is queued leave before a long computation blocks the loop (bounded)."""
        ...

    async def close(self) -> None:
        """Deliver what is queued (bounded), announce offline, disconnect."""
        ...
