"""The OpenADR 3.1 VEN as a grid link (vpp.grid.link.GridLink).

`run()` registers (token, VEN object by venName, the site as a resource), then polls the
VTN's programs and events every `poll_s` on the clock and posts the reports waiting. Each
VTN event becomes a native event message on the inbox (vpp.grid.oadr3.mapping); a changed
event is a modification, one deleted (or no longer listed for this VEN) a cancel. Any
failure of the VTN (refused, timeout, 5xx, bad JSON, wrong types, token endpoint down) is
one log line and a retry with backoff (1 s doubling to 30 s, on the clock): `run()` never
ends on its own, so the native MQTT link beside it keeps working.

OpenADR 3.1 has no opt-in or opt-out message: the agent's answers are logged; an `opt_in`
posts LOAD_SHED_DELTA_AVAILABLE where the event's descriptors ask for it.

Where the VTN offers an MQTT notifier (vpp.grid.oadr3.notifier), a notification of an event
operation starts the next poll at once; polling every `poll_s` stays the fallback.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import os
import ssl
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlparse

import httpx
import structlog
from pydantic import BaseModel, ValidationError

from devices.clock import Clock
from vpp.grid.link import InboundGridMessage
from vpp.grid.messages import Response
from vpp.grid.oadr3 import wire
from vpp.grid.oadr3.auth import TokenSource, VtnError
from vpp.grid.oadr3.client import TIMEOUT_S, VtnClient
from vpp.grid.oadr3.mapping import Unmappable, cancel_of, map_event, native_id
from vpp.grid.oadr3.notifier import MqttNotifier, discover, listen
from vpp.grid.oadr3.reports import REPORTED_TYPES, flexibility_body, report_body
from vpp.grid.oadr3.state import TrackedEvent, VenState
from vpp.grid.types import parse_duration, parse_time
from vpp.site import OpenAdr3Config, Site
from vpp.store.store import Store

log = structlog.get_logger(__name__)

PAGE = 50
"""`limit` of every list request: the spec's maximum."""
MAX_PAGES = 20
"""At most this many pages of one list per poll (1000 objects)."""
FORGET_AFTER = timedelta(days=2)
"""An event the VTN no longer lists is forgotten this long after its end (its reports are
out by then)."""
BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0

M = TypeVar("M", bound=BaseModel)


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


def _digest(raw: dict[str, Any]) -> str:
    """What the VTN asks, without its bookkeeping (a new modificationDateTime alone is no
    modification)."""
    content = {k: v for k, v in raw.items() if k not in ("createdDateTime", "modificationDateTime")}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:32]


def site_attributes(site: Site) -> list[dict[str, Any]]:
    """The site's flexible capacity as resource attributes (ven-resource-attributes): its
    import and export limits and, as a private attribute, the kW its batteries can
    discharge (their power setpoint limits)."""
    limits = site.config.limits
    attrs = [wire.values_map("DESCRIPTION", [site.config.name or site.id])]
    if limits.import_kw is not None:
        attrs.append(wire.values_map("MAX_POWER_CONSUMPTION", [float(limits.import_kw)]))
    if limits.export_kw is not None:
        attrs.append(wire.values_map("MAX_POWER_EXPORT", [float(limits.export_kw)]))
    discharge = sum(
        max(0.0, -d.config.limits["power_setpoint_kw"][0])
        for d in site.devices
        if "power_setpoint_kw" in d.config.limits
    )
    attrs.append(wire.values_map("VPP_DISCHARGE_CAPACITY_KW", [round(discharge, 3)]))
    return attrs


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
        self.state = VenState(store, clock)
        self.simple_levels_kw = dict(site.config.grid.simple_levels_kw)
        self.resource_name = site.id
        self._backoff_max_s = backoff_max_s
        self._timeout_s = timeout_s
        self._inbox: asyncio.Queue[InboundGridMessage] = asyncio.Queue()
        self._programs: dict[str, str] = {}
        self._logged: set[str] = set()
        self._reports_waiting = asyncio.Event()
        if self.state.pending:
            self._reports_waiting.set()
        self.client: VtnClient | None = None
        self.registered = asyncio.Event()
        self._wake = asyncio.Event()
        self.notified = 0
        """Notifications received from the VTN's MQTT notifier (tests, bench)."""
        self.notifier: MqttNotifier | None = None
        self.polls = 0
        """Complete polls so far (tests, bench)."""
        self.failures = 0
        """Failed VTN exchanges so far (tests)."""
        # Read once, here: a CA file that cannot be used is a start-up error naming it.
        self._tls: ssl.SSLContext | bool = True
        if cfg.ca_file is not None:
            try:
                self._tls = ssl.create_default_context(cafile=str(cfg.ca_file))
            except (OSError, ssl.SSLError) as e:
                raise ValueError(f"grid.openadr3.ca_file: {cfg.ca_file}: {e}") from None
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
            self._answer(response)
        except Exception:  # the agent's DR controller calls this: it must not fail it
            log.exception("openadr3_answer_failed", event_id=response.event_id)

    def _answer(self, response: Response) -> None:
        log.info(
            "openadr3_answer",
            event_id=response.event_id,
            modification=response.modification,
            status=response.status,
            reason=response.reason,
        )
        if response.status != "opt_in" or response.event_id is None:
            return
        found = self.state.by_native(response.event_id)
        if found is None or response.expected_kw is None:
            return
        oadr_id, tracked = found
        asked = any(
            d.get("payloadType") == "LOAD_SHED_DELTA_AVAILABLE" for d in tracked.descriptors
        )
        mod = response.modification or 0
        if not asked or tracked.native is None or mod in tracked.flexibility:
            return
        if tracked.native.get("signal") != "curtail_kw":
            return  # a cap's expected_kw is the cap, not a reduction
        intervals = tracked.native["intervals"]
        self._queue(
            flexibility_body(
                event_id=oadr_id,
                client_name=self.config.ven_name,
                resource_name=self.resource_name,
                expected_kw=response.expected_kw,
                intervals=intervals,
                interval_ids=tracked.interval_ids,
            )
        )
        tracked.flexibility.append(mod)
        self.state.save()

    def send_report(self, report: dict[str, Any]) -> None:
        """The intervals ended since the last report (each interval once, after it ended),
        and after the last one all of them again in a final report, as the event's
        reportDescriptors ask. Never raises."""
        try:
            self._report(report)
        except Exception:  # the agent's reporting calls this: it must not fail it
            log.exception("openadr3_report_not_made", event_id=report.get("event_id"))

    def _report(self, report: dict[str, Any]) -> None:
        event_id = report.get("event_id")
        found = self.state.by_native(event_id) if isinstance(event_id, str) else None
        if found is None:
            return
        oadr_id, tracked = found
        descriptors = [wire.ReportDescriptor.model_validate(d) for d in tracked.descriptors]
        if not descriptors:
            return
        self._note_unreported(oadr_id, descriptors)
        mod = int(report.get("modification", 0))
        intervals: list[dict[str, Any]] = list(report.get("intervals", []))
        done = tracked.reported.get(str(mod), 0)
        posts: list[tuple[int, str]] = []
        if len(intervals) > done:
            posts.append((done, f"{oadr_id} intervals {done}-{len(intervals) - 1}"))
        final = bool(report.get("final")) and mod not in tracked.final
        if final:
            posts.append((0, f"{oadr_id} final"))
        for first, name in posts:
            body = report_body(
                event_id=oadr_id,
                client_name=self.config.ven_name,
                resource_name=self.resource_name,
                report_name=name,
                descriptors=descriptors,
                intervals=intervals[first:],
                interval_ids=tracked.interval_ids[first:],
            )
            if body is not None:
                self._queue(body)
        tracked.reported[str(mod)] = max(done, len(intervals))
        if final:
            tracked.final.append(mod)
        self.state.save()

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
                await self._poll(client)
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

    async def _register(self, client: VtnClient) -> None:
        """Find or create this VEN by venName, then its site resource (3.1.0 has no
        /vens/{id}/resources: /resources with venID)."""
        name = self.config.ven_name
        vens = _list_of(await client.request("GET", "/vens", params={"venName": name}), "vens")
        ven_id = next(
            (v.id for v in _parsed(vens, wire.Ven, "GET /vens") if v.venName == name), None
        )
        if ven_id is None:
            created = await client.request("POST", "/vens", body=wire.ven_request(name, []))
            ven_id = _one(created, wire.Ven, "POST /vens").id
        resources = _list_of(
            await client.request(
                "GET", "/resources", params={"venID": ven_id, "resourceName": self.resource_name}
            ),
            "resources",
        )
        resource_id = next(
            (
                r.id
                for r in _parsed(resources, wire.Resource, "GET /resources")
                if r.resourceName == self.resource_name
            ),
            None,
        )
        if resource_id is None:
            body = wire.resource_request(self.resource_name, ven_id, site_attributes(self.site))
            created = await client.request("POST", "/resources", body=body)
            resource_id = _one(created, wire.Resource, "POST /resources").id
        self.state.ven_id, self.state.resource_id = ven_id, resource_id
        self.state.save()
        self.registered.set()
        log.info("openadr3_registered", ven_id=ven_id, resource_id=resource_id, vtn=self.base_url)

    async def _pages(self, client: VtnClient, path: str) -> list[Any]:
        items: list[Any] = []
        for page in range(MAX_PAGES):
            params = [("targets", self.config.ven_name), ("skip", page * PAGE), ("limit", PAGE)]
            batch = _list_of(await client.request("GET", path, params=params), path)
            items.extend(batch)
            if len(batch) < PAGE:
                return items
        log.warning("openadr3_list_truncated", path=path, objects=len(items))
        return items

    async def _poll(self, client: VtnClient) -> None:
        programs = await self._pages(client, "/programs")
        for program in _parsed(programs, wire.Program, "GET /programs"):
            self._programs[program.id] = program.programName
        raw_events = await self._pages(client, "/events")
        seen: set[str] = set()
        for raw in raw_events:
            try:
                event = wire.Event.model_validate(raw)
            except ValidationError as e:
                ident = raw.get("id") if isinstance(raw, dict) else None
                self._once(
                    f"bad:{_digest(raw) if isinstance(raw, dict) else ident}",
                    ("openadr3_event_unreadable", {"vtn_event": ident, "error": _first(e)}),
                )
                if isinstance(ident, str):
                    seen.add(ident)  # unreadable is not deleted
                continue
            seen.add(event.id)
            try:
                self._track(event, _digest(raw))
            except Exception as e:  # one event we cannot handle must not block the others
                self._once(
                    f"failed:{event.id}:{_digest(raw)}",
                    ("openadr3_event_failed", {"vtn_event": event.id, "error": repr(e)[:200]}),
                )
        now = self.clock.now()
        for oadr_id, tracked in self.state.events.items():
            if oadr_id in seen or tracked.cancelled or tracked.native is None:
                continue
            tracked.cancelled = True
            if _ended(tracked.native, now):
                continue  # over already: nothing to cancel
            tracked.modification += 1
            self._deliver(oadr_id, cancel_of(tracked.native, tracked.modification))
            log.info("openadr3_event_gone", vtn_event=oadr_id, native_id=tracked.native_id)
        self._forget_old(seen, now)
        self.state.save()

    def _forget_old(self, seen: set[str], now: datetime) -> None:
        """Forget events the VTN no longer lists that ended (or were first seen) more than
        FORGET_AFTER ago: the state stays the size of what is current."""
        for oadr_id, tracked in list(self.state.events.items()):
            if oadr_id in seen:
                continue
            since = parse_time(tracked.first_seen)
            if tracked.native is not None:
                since = max(since, _end(tracked.native))
            if now - since > FORGET_AFTER:
                del self.state.events[oadr_id]

    def _track(self, event: wire.Event, digest: str) -> None:
        tracked = self.state.events.get(event.id)
        if tracked is not None and tracked.digest == digest and not tracked.cancelled:
            return
        if tracked is None:
            first_seen = self.clock.now()
            tracked = TrackedEvent(native_id(event.id), 0, digest, first_seen.isoformat())
            self.state.events[event.id] = tracked
            modification = 0
        else:
            if tracked.digest == digest:
                return
            modification = tracked.modification + (0 if tracked.native is None else 1)
            first_seen = parse_time(tracked.first_seen)
        tracked.digest = digest
        try:
            mapped = map_event(
                event,
                program_name=self._programs.get(event.programID),
                simple_levels_kw=self.simple_levels_kw,
                modification=modification,
                first_seen=first_seen,
            )
        except Unmappable as e:
            log.warning("openadr3_event_ignored", vtn_event=event.id, reason=str(e))
            if tracked.native is not None and not tracked.cancelled:
                # What we were doing is no longer asked: stop it.
                tracked.modification = modification
                tracked.cancelled = True
                self._deliver(event.id, cancel_of(tracked.native, modification))
            return
        for ignored in mapped.ignored_types:
            log.warning("openadr3_payload_ignored", vtn_event=event.id, payload_type=ignored)
        tracked.modification = modification
        tracked.native = mapped.native
        tracked.cancelled = False
        tracked.interval_ids = mapped.interval_ids
        tracked.descriptors = [
            d.model_dump(exclude_none=True) for d in event.reportDescriptors or []
        ]
        self._deliver(event.id, mapped.native)
        log.info(
            "openadr3_event",
            vtn_event=event.id,
            native_id=tracked.native_id,
            modification=modification,
            payload_type=mapped.payload_type,
        )

    def _deliver(self, oadr_id: str, native: dict[str, Any]) -> None:
        payload = json.dumps(native, separators=(",", ":")).encode()
        self._inbox.put_nowait(InboundGridMessage(payload, f"openadr3:/events/{oadr_id}"))

    # -- reports --------------------------------------------------------------------------

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

    def _note_unreported(self, oadr_id: str, descriptors: list[wire.ReportDescriptor]) -> None:
        for d in descriptors:
            if d.payloadType not in REPORTED_TYPES and d.payloadType != "LOAD_SHED_DELTA_AVAILABLE":
                self._once(
                    f"unreported:{oadr_id}:{d.payloadType}",
                    (
                        "openadr3_report_type_ignored",
                        {"vtn_event": oadr_id, "payload_type": d.payloadType},
                    ),
                )

    def _once(self, key: str, entry: tuple[str, dict[str, Any]]) -> None:
        if key in self._logged:
            return
        self._logged.add(key)
        log.warning(entry[0], **entry[1])


def _list_of(data: Any, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise VtnError(f"GET {what}: expected a JSON array, got {type(data).__name__}")
    return data


def _parsed(items: list[Any], model: type[M], what: str) -> list[M]:
    out = []
    for item in items:
        try:
            out.append(model.model_validate(item))
        except ValidationError as e:
            log.warning("openadr3_object_unreadable", request=what, error=_first(e))
    return out


def _one(data: Any, model: Any, what: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise VtnError(f"{what}: unexpected answer ({_first(e)})") from e


def _first(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "$"
    return f"{loc}: {err['msg']}"


def _end(native: dict[str, Any]) -> datetime:
    last = native["intervals"][-1]
    return parse_time(last["start"]) + parse_duration(last["duration"])


def _ended(native: dict[str, Any], now: datetime) -> bool:
    return _end(native) <= now
