"""The OpenADR 3.1 VEN as a grid link (vpp.grid.link.GridLink).

`run()` registers (token, VEN object by venName, the site as a resource:
vpp.grid.oadr3.registration), then polls the VTN's programs and events every `poll_s` on
the clock (vpp.grid.oadr3.tracker: each VTN event a native event message on the inbox, a
changed one a modification, a deleted one a cancel) and posts the reports waiting
(vpp.grid.oadr3.outgoing). Any failure of the VTN (refused, timeout, 5xx, bad JSON, wrong
types, token endpoint down) is one log line and a retry with backoff (1 s doubling to 30 s,
on the clock): `run()` never ends on its own, so the native MQTT link beside it keeps
working.

Where the VTN offers an MQTT notifier (vpp.grid.oadr3.notifier), a notification of an event
operation starts the next poll at once; polling every `poll_s` stays the fallback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import ssl
from typing import Any
from urllib.parse import urlparse

import httpx
import structlog

from devices.clock import Clock
from vpp.grid.link import InboundGridMessage
from vpp.grid.messages import Response
from vpp.grid.oadr3.auth import TokenSource
from vpp.grid.oadr3.client import TIMEOUT_S, VtnClient
from vpp.grid.oadr3.errors import VtnError
from vpp.grid.oadr3.notifier import MqttNotifier, discover, listen
from vpp.grid.oadr3.outgoing import ReportMaker
from vpp.grid.oadr3.registration import register
from vpp.grid.oadr3.state import VenState
from vpp.grid.oadr3.tracker import EventTracker
from vpp.site import OpenAdr3Config, Site
from vpp.store.store import Store

log = structlog.get_logger(__name__)

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0


def _secret(config: OpenAdr3Config) -> str:
    value = os.environ.get(config.client_secret_env)
    if not value:
        raise ValueError(
            f"grid.openadr3.client_secret_env: the environment variable "
            f"{config.client_secret_env} is not set (the OAuth2 client secret)"
        )
    return value


def _loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tls(config: OpenAdr3Config) -> ssl.SSLContext | bool:
    """What to verify the VTN's certificate with: the CA file, read once here (a file that
    cannot be used is a start-up error naming it), else the system's CA store."""
    if config.ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(config.ca_file))
    except (OSError, ssl.SSLError) as e:
        raise ValueError(f"grid.openadr3.ca_file: {config.ca_file}: {e}") from None


class Oadr3Link:
    """The VEN for `site` (its `grid.openadr3` settings) on `clock`, its state in `store`."""

    def __init__(
        self,
        site: Site,
        clock: Clock,
        store: Store | None,
        *,
        config: OpenAdr3Config | None = None,
        backoff_max_s: float = BACKOFF_MAX_S,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        cfg = config or site.config.grid.openadr3
        if cfg is None:
            raise ValueError("grid.openadr3: not configured")
        self.config = cfg
        self.site = site
        self.clock = clock
        self.base_url = str(cfg.vtn_url).rstrip("/")
        self.tokens = TokenSource(cfg.client_id, _secret(cfg), clock)
        self._tls = _tls(cfg)
        self.state = VenState(store, clock)
        self.tracker = EventTracker(
            self.state,
            clock,
            ven_name=cfg.ven_name,
            simple_levels_kw=dict(site.config.grid.simple_levels_kw),
            deliver=self._deliver,
        )
        self.reports = ReportMaker(
            self.state, client_name=cfg.ven_name, resource_name=site.id, queue=self._queue
        )
        self._backoff_max_s = backoff_max_s
        self._timeout_s = timeout_s
        self._inbox: asyncio.Queue[InboundGridMessage] = asyncio.Queue()
        self._reports_waiting = asyncio.Event()
        if self.state.pending:
            self._reports_waiting.set()
        self._wake = asyncio.Event()
        self.client: VtnClient | None = None
        self.registered = asyncio.Event()
        self.notifier: MqttNotifier | None = None
        self.notified = 0
        """Notifications received from the VTN's MQTT notifier (tests, bench)."""
        self.polls = 0
        """Complete polls so far (tests, bench)."""
        self.failures = 0
        """Failed VTN exchanges so far (tests)."""
        if urlparse(self.base_url).scheme == "http" and not _loopback(self.base_url):
            log.warning(
                "openadr3_plain_http",
                vtn_url=self.base_url,
                note="the spec asks for HTTPS; plain HTTP is for loopback tests",
            )

    # -- GridLink -------------------------------------------------------------------------

    async def run(self) -> None:
        timeout = httpx.Timeout(self._timeout_s)
        async with httpx.AsyncClient(timeout=timeout, verify=self._tls) as http:
            self.client = VtnClient(self.base_url, self.clock, self.tokens, http)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._poll_loop(self.client))
                tg.create_task(self._report_loop(self.client))
                tg.create_task(self._notifier_loop(self.client))

    async def receive(self) -> InboundGridMessage:
        return await self._inbox.get()

    def send_response(self, response: Response) -> None:
        """OpenADR 3.1 carries no answer to an event: logged; an opt_in's expected kW go out
        as LOAD_SHED_DELTA_AVAILABLE where the event asks for that. Never raises."""
        try:
            self.reports.answer(response)
        except Exception:  # the agent's DR controller calls this: it must not fail it
            log.exception("openadr3_answer_failed", event_id=response.event_id)

    def send_report(self, report: dict[str, Any]) -> None:
        """The reports the event's descriptors ask for (vpp.grid.oadr3.outgoing), queued.
        Never raises."""
        try:
            self.reports.report(report)
        except Exception:  # the agent's reporting calls this: it must not fail it
            log.exception("openadr3_report_not_made", event_id=report.get("event_id"))

    def send_telemetry(self, telemetry: dict[str, Any]) -> None:
        """OpenADR 3.1 has no telemetry stream outside reports: nothing is sent."""

    async def flush(self) -> None:
        """Answers do not go on the wire; reports leave on their own."""

    async def close(self, wall_timeout_s: float = 5.0) -> None:
        """Post the reports still waiting (bounded), then stop."""
        client = self.client
        if client is None or not self.state.pending:
            return
        try:
            async with asyncio.timeout(wall_timeout_s):
                await self._post_pending(client)
        except (TimeoutError, VtnError) as e:
            log.warning("openadr3_reports_left", count=len(self.state.pending), error=str(e))

    # -- polling --------------------------------------------------------------------------

    async def _poll_loop(self, client: VtnClient) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            try:
                if not self.registered.is_set():
                    await self._register(client)
                self._wake.clear()  # a notification from now on asks for another poll
                await self.tracker.poll(client)
                self.polls += 1
                backoff = BACKOFF_MIN_S
                await self._sleep_or_wake(self.config.poll_s)
            except Exception as e:  # nothing from the VTN may end the agent
                self.failures += 1
                log.warning(
                    "openadr3_vtn_failed",
                    error=str(e) if isinstance(e, VtnError) else f"{type(e).__name__}: {e}",
                    retry_s=backoff,
                )
                await self.clock.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max_s)

    async def _register(self, client: VtnClient) -> None:
        ven_id, resource_id = await register(client, self.config.ven_name, self.site)
        self.state.ven_id, self.state.resource_id = ven_id, resource_id
        self.state.save()
        self.registered.set()
        log.info("openadr3_registered", ven_id=ven_id, resource_id=resource_id, vtn=self.base_url)

    async def _sleep_or_wake(self, seconds: float) -> None:
        """Wait `seconds` on the clock, or less if the VTN's notifier says something changed."""
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)

    def _deliver(self, oadr_id: str, native: dict[str, Any]) -> None:
        payload = json.dumps(native, separators=(",", ":")).encode()
        self._inbox.put_nowait(InboundGridMessage(payload, f"openadr3:/events/{oadr_id}"))

    # -- the notifier ---------------------------------------------------------------------

    def _notified(self) -> None:
        self.notified += 1
        self._wake.set()

    async def _notifier_loop(self, client: VtnClient) -> None:
        """Subscribe to the VTN's MQTT notifier where it offers one; polling goes on
        regardless (the fallback), and a lost broker is retried with backoff."""
        await self.registered.wait()
        try:
            self.notifier = await discover(client, self.state.ven_id)
        except Exception as e:  # a broken /notifiers answer: poll only
            log.warning("openadr3_notifier_unusable", error=str(e)[:200])
            return
        if self.notifier is None:
            return
        backoff = BACKOFF_MIN_S
        while True:
            try:
                await listen(self.notifier, client, self.clock, self._notified)
                backoff = BACKOFF_MIN_S
            except Exception as e:  # aiomqtt.MqttError, VtnError (its token), OSError...
                log.warning("openadr3_notifier_lost", error=str(e)[:200], retry_s=backoff)
            await self.clock.sleep(backoff)
            backoff = min(backoff * 2, self._backoff_max_s)

    # -- posting reports ------------------------------------------------------------------

    def _queue(self, body: dict[str, Any]) -> None:
        self.state.pending.append(body)
        self._reports_waiting.set()

    async def _report_loop(self, client: VtnClient) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            await self._reports_waiting.wait()
            try:
                await self._post_pending(client)
                backoff = BACKOFF_MIN_S
            except Exception as e:  # retried: a report is kept until the VTN takes it
                self.failures += 1
                log.warning("openadr3_report_failed", error=str(e), retry_s=backoff)
                await self.clock.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max_s)

    async def _post_pending(self, client: VtnClient) -> None:
        await self.registered.wait()
        while self.state.pending:
            body = self.state.pending[0]
            await client.request("POST", "/reports", body=body)
            self.state.pending.pop(0)
            self.state.save()
            log.info(
                "openadr3_report_posted", vtn_event=body["eventID"], name=body.get("reportName")
            )
        self._reports_waiting.clear()
