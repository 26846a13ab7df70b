"""The OpenADR 2.0b VEN (a vpp.grid.link.GridLink): simple HTTP pull against a VTN.

A session registers (oadrCreatePartyRegistration; we use the venID the VTN assigns),
offers the TELEMETRY_USAGE report of the site import (oadrRegisterReport) and serves the
requests the VTN puts in its oadrRegisteredReport (openleadr's VTN sends no separate
oadrCreateReport, but one arriving on a poll is honoured too), asks for every event
(oadrRequestEvent), then polls (oadrPoll) every `poll_s` (default: the VTN's
oadrRequestedOadrPollFreq), answers events with oadrCreatedEvent and sends oadrUpdateReport
every reportBackDuration.

Events become native contract events (vpp.grid.openadr2b.mapping) on this link's inbox, so
the planner, dispatcher and ledger carry them out as any; the agent's `opt_in`/`opt_out`
go back as optIn/optOut. A VTN that fails (HTTP errors, timeouts, bad XML, refusals) is one
log line and a retry with backoff on the clock: it never ends the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from devices.clock import Clock
from vpp.grid.link import InboundGridMessage
from vpp.grid.messages import Response
from vpp.grid.openadr2b import inbound, wire
from vpp.grid.openadr2b.inbound import Distribution, Message, OadrError
from vpp.grid.openadr2b.mapping import native_id, opt_answer, to_native
from vpp.grid.openadr2b.signature import Signer, Verifier
from vpp.grid.openadr2b.telemetry import ImportSamples, Schedule
from vpp.grid.openadr2b.transport import VtnError, VtnTransport, tls_context
from vpp.site import OpenAdr2bConfig

log = structlog.get_logger(__name__)

R_ID = "site_import"
"""The rID of the site import in our TELEMETRY_USAGE report."""
SPECIFIER_ID = "vpp-telemetry-usage"
DEFAULT_POLL_S = 10.0
"""Poll period when neither the site file nor the VTN names one."""
MAX_POLL_ROUNDS = 16
"""Polls in a row while the VTN has messages for us (bounded: a VTN that never runs dry)."""
KEEP = timedelta(days=1)
"""How long after its end an event the VTN no longer sends is remembered."""
REREGISTER_AFTER = 3
"""Failures in a row after which we register afresh (the VTN may have lost us); fewer
resume polling with the venID we have."""


class Reregister(Exception):
    """The VTN asked us to register again (oadrRequestReregistration)."""


@dataclass
class _Known:
    """An OpenADR event this link has handed to the agent."""

    oadr_id: str
    modification: int
    request_id: str
    response_required: bool
    end: datetime
    payload: dict[str, Any] | None
    cancelled: bool = False


def _ok(msg: Message | None, kind: str, *expected: str) -> Message | None:
    """`msg` if it is one of `expected` with a 2xx code (or none); else VtnError."""
    if msg is None:
        return None
    if msg.kind not in expected:
        raise VtnError(f"{kind}: answered with {msg.kind}, not {' or '.join(expected)}")
    if msg.code is not None and not 200 <= msg.code < 300:
        raise VtnError(f"{kind}: refused ({msg.code} {msg.description or ''})".strip())
    return msg


class Oadr2bLink:
    """The VEN of one site; `levels` is the site file's `grid.simple_levels_kw`; `signer`
    signs what we send in place of the one `config.sign` makes from cert_file/key_file."""

    def __init__(
        self,
        config: OpenAdr2bConfig,
        site_id: str,
        clock: Clock,
        *,
        levels: Mapping[int, float],
        signer: Signer | None = None,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 30.0,
        timeout_s: float = 10.0,
    ) -> None:
        self.config = config
        self.site_id = site_id
        self.clock = clock
        self._levels = dict(levels)
        tls = None
        if config.vtn_url.startswith("https:"):
            # Read once, here: a bad CA or certificate file is a start-up error.
            tls = tls_context(config.ca_file, config.cert_file, config.key_file)
        # XML signatures (files read here too); `signer` given: that one, else the site's.
        if signer is None and config.sign and config.cert_file and config.key_file:
            signer = Signer.from_files(config.cert_file, config.key_file)
        verifier = Verifier.from_file(config.vtn_cert_file) if config.vtn_cert_file else None
        self._signing = signer is not None
        self._vtn = VtnTransport(
            config.vtn_url,
            tls=tls,
            timeout_s=timeout_s,
            signer=signer,
            verifier=verifier,
            now=clock.now,
        )
        self._backoff_min_s = backoff_min_s
        self._backoff_max_s = backoff_max_s
        self._backoff_s = backoff_min_s
        self._inbox: asyncio.Queue[InboundGridMessage] = asyncio.Queue(maxsize=256)
        self._answers: deque[wire.EventAnswer] = deque(maxlen=1024)
        self._wake = asyncio.Event()
        self._known: dict[str, _Known] = {}
        self._unreadable: set[tuple[str, int]] = set()
        self._samples = ImportSamples()
        self._reports: dict[str, Schedule] = {}
        self._ids = itertools.count(1)
        self.ven_id: str | None = None
        """The venID the VTN assigned (None until registered)."""
        self.registration_id: str | None = None
        self.poll_s = config.poll_s or DEFAULT_POLL_S
        self.registered = asyncio.Event()
        self.vtn_errors = 0
        """VTN failures since start (each one logged)."""
        self._failures_in_row = 0
        self._closed = False

    def _request_id(self) -> str:
        return f"{self.site_id}-{next(self._ids)}"

    async def _post(self, service: str, body: bytes) -> Message | None:
        # Simulated time stands still while the VTN answers (as for the MQTT broker).
        async with self.clock.hold():
            return await self._vtn.post(service, body)

    # -- GridLink -------------------------------------------------------------------------

    async def run(self) -> None:
        """Register, poll, answer and report until cancelled; a failing VTN is retried."""
        while True:
            try:
                await self._session()
            except Reregister:
                # Not an error, but a VTN that asks every time must not spin us: backoff.
                log.info("openadr2b_reregister", ven_id=self.ven_id, retry_s=self._backoff_s)
                self.registered.clear()
            except VtnError as e:
                self._failed(str(e))
            except Exception as e:
                # A VTN answer that trips our own code must not end the agent either.
                self._failed(f"{e.__class__.__name__}: {e}")
            if self._failures_in_row >= REREGISTER_AFTER:
                self.registered.clear()
            await self.clock.sleep(self._backoff_s)
            self._backoff_s = min(self._backoff_s * 2, self._backoff_max_s)

    def _failed(self, error: str) -> None:
        if self._closed:
            return  # close() ended the HTTP client under a request in flight: not the VTN
        self.vtn_errors += 1
        self._failures_in_row += 1
        log.warning(
            "openadr2b_vtn_error",
            vtn=self.config.vtn_url,
            error=" ".join(error.split())[:300],
            retry_s=self._backoff_s,
        )

    async def receive(self) -> InboundGridMessage:
        return await self._inbox.get()

    def send_response(self, response: Response) -> None:
        """optIn/optOut (with the reason) for the event and modification the VTN sent;
        `received` and `completed` have no 2.0b message."""
        known = self._known.get(response.event_id or "")
        answer = opt_answer(response.status, response.reason)
        if known is None or answer is None or not known.response_required:
            return
        if response.modification != known.modification:
            return  # the VTN has moved on to a newer modification (or dropped the event)
        self._answers.append(
            wire.EventAnswer(
                known.oadr_id,
                known.modification,
                answer.opt_type,
                known.request_id,
                answer.code,
                answer.description[:500],
            )
        )
        self._wake.set()

    def send_report(self, report: dict[str, Any]) -> None:
        """2.0b has no event performance report: the VTN gets TELEMETRY_USAGE instead."""

    def send_telemetry(self, telemetry: dict[str, Any]) -> None:
        """Keep the site import for the TELEMETRY_USAGE report."""
        kw, ts = telemetry.get("site_import_kw"), telemetry.get("ts")
        if not isinstance(kw, int | float) or isinstance(kw, bool):
            return
        try:
            when = ts if isinstance(ts, datetime) else datetime.fromisoformat(str(ts))
        except ValueError:
            return
        if when.tzinfo is not None:
            self._samples.add(when, float(kw))

    async def flush(self) -> None:
        """Nothing of 2.0b must leave before planning (`received` has no message)."""

    async def close(self, wall_timeout_s: float = 5.0) -> None:
        """Send the answers still queued (bounded), then close the HTTP client."""
        if self._answers and self.ven_id is not None and self.registered.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._send_answers(), wall_timeout_s)
        self._closed = True
        await self._vtn.close()

    # -- the session ----------------------------------------------------------------------

    async def _session(self) -> None:
        if not self.registered.is_set():
            await self._register()
            await self._register_reports()
            msg = await self._post("EiEvent", wire.request_event(self._request_id(), self._ven()))
            await self._handle(_ok(msg, "oadrRequestEvent", "oadrDistributeEvent", "oadrResponse"))
            self.registered.set()
            self._backoff_s, self._failures_in_row = self._backoff_min_s, 0
        while True:
            await self._send_answers()
            await self._send_reports()
            await self._poll()
            self._backoff_s, self._failures_in_row = self._backoff_min_s, 0
            await self._pause()

    def _ven(self) -> str:
        if self.ven_id is None:
            raise VtnError("not registered")
        return self.ven_id

    async def _register(self) -> None:
        body = wire.create_party_registration(
            self._request_id(),
            self.config.ven_name,
            ven_id=self.ven_id,
            registration_id=self.registration_id,
            xml_signature=self._signing,
        )
        msg = await self._post("EiRegisterParty", body)
        if msg is None:
            raise VtnError("EiRegisterParty: empty answer")
        try:
            reg = inbound.registration(msg)
        except OadrError as e:
            raise VtnError(str(e)) from None
        if reg.ven_id != self.ven_id:
            log.info("openadr2b_registered", ven_id=reg.ven_id, vtn_id=reg.vtn_id)
        self.ven_id, self.registration_id = reg.ven_id, reg.registration_id
        if self.config.poll_s is None and reg.poll_freq is not None:
            self.poll_s = min(max(reg.poll_freq.total_seconds(), 1.0), 3600.0)

    async def _register_reports(self) -> None:
        now = self.clock.now()
        offer = wire.UsageReportOffer(
            SPECIFIER_ID,
            R_ID,
            self.site_id,
            min_period=timedelta(seconds=5),
            max_period=timedelta(minutes=15),
        )
        self._reports.clear()  # the VTN issues its requests afresh on each registration
        body = wire.register_report(self._request_id(), self._ven(), offer, now)
        msg = _ok(await self._post("EiReport", body), "oadrRegisterReport", "oadrRegisteredReport")
        if msg is not None:
            await self._accept_reports(msg)

    async def _accept_reports(self, msg: Message) -> None:
        """Serve the report requests of an oadrRegisteredReport or oadrCreateReport."""
        try:
            requests = inbound.report_requests(msg)
        except OadrError as e:
            log.warning("openadr2b_report_request_unreadable", error=str(e))
            return
        now = self.clock.now()
        for rq in requests:
            if R_ID not in rq.r_ids or rq.specifier_id != SPECIFIER_ID:
                log.info(
                    "openadr2b_report_request_ignored",
                    report_request_id=rq.request_id,
                    reason=f"asks for {rq.specifier_id} {rq.r_ids}, we offer {SPECIFIER_ID} {R_ID}",
                )
                continue
            back = max(rq.back, timedelta(seconds=1))
            self._reports[rq.request_id] = Schedule(rq, R_ID, reported_to=now, due=now + back)
            log.info(
                "openadr2b_report_accepted",
                report_request_id=rq.request_id,
                granularity_s=rq.granularity.total_seconds(),
                report_back_s=back.total_seconds(),
            )
        if requests:
            body = wire.created_report(self._ven(), inbound.request_id(msg), list(self._reports))
            _ok(await self._post("EiReport", body), "oadrCreatedReport", "oadrResponse")

    async def _poll(self) -> None:
        for _ in range(MAX_POLL_ROUNDS):
            msg = await self._post("OadrPoll", wire.poll(self._ven()))
            if msg is None or msg.kind == "oadrResponse":
                _ok(msg, "oadrPoll", "oadrResponse")
                return
            await self._handle(msg)

    async def _handle(self, msg: Message | None) -> None:
        """One VTN message from a poll (or the answer to oadrRequestEvent)."""
        if msg is None or msg.kind == "oadrResponse":
            return
        if msg.kind == "oadrDistributeEvent":
            self._distribution(inbound.distribution(msg))
        elif msg.kind == "oadrRequestReregistration":
            with contextlib.suppress(VtnError):
                await self._post("OadrPoll", wire.response(self._ven(), ""))
            raise Reregister
        elif msg.kind == "oadrCreateReport":
            await self._accept_reports(msg)
        elif msg.kind == "oadrCancelReport":
            for rr_id in inbound.cancelled_report_ids(msg):
                self._reports.pop(rr_id, None)
                log.info("openadr2b_report_cancelled", report_request_id=rr_id)
            body = wire.canceled_report(self._ven(), inbound.request_id(msg), list(self._reports))
            _ok(await self._post("EiReport", body), "oadrCanceledReport", "oadrResponse")
        else:
            log.info("openadr2b_message_ignored", kind=msg.kind)

    # -- events ---------------------------------------------------------------------------

    def _distribution(self, d: Distribution) -> None:
        now = self.clock.now()
        for problem in d.problems:
            log.warning("openadr2b_event_unreadable", problem=problem[:300])
        for event_id, modification in d.unread:
            if (event_id, modification) in self._unreadable:
                continue  # opted out of already (a VTN may send its whole list every poll)
            self._unreadable.add((event_id, modification))
            self._answers.append(
                wire.EventAnswer(
                    event_id, modification, "optOut", d.request_id, 400, "unreadable event"
                )
            )
        seen: set[str] = set()
        for ev in d.events:
            nid = native_id(ev.event_id)
            seen.add(nid)
            known = self._known.get(nid)
            if ev.status == "completed" or (known and ev.modification <= known.modification):
                continue  # over, already handed on, or stale
            mapped = to_native(ev, self._levels)
            self._known[nid] = _Known(
                oadr_id=ev.event_id,
                modification=ev.modification,
                request_id=d.request_id,
                response_required=ev.response_required == "always",
                end=ev.start + ev.length,
                payload=mapped.payload,
                cancelled=ev.status == "cancelled",
            )
            if mapped.payload is None:
                log.info(
                    "openadr2b_event_not_carried_out", event_id=ev.event_id, reason=mapped.reason
                )
                if ev.response_required == "always":
                    self._answers.append(
                        wire.EventAnswer(
                            ev.event_id,
                            ev.modification,
                            "optOut",
                            d.request_id,
                            200,
                            (mapped.reason or "not carried out")[:500],
                        )
                    )
                continue
            log.info(
                "openadr2b_event",
                event_id=ev.event_id,
                modification=ev.modification,
                status=ev.status,
            )
            self._put(mapped.to_json(), ev.event_id)
        # Events long over and no longer sent are forgotten (the map stays bounded).
        for nid in [n for n, k in self._known.items() if n not in seen and k.end < now - KEEP]:
            del self._known[nid]
        # 2.0b distributes the whole list: a live event missing from it has been cancelled.
        for nid, known in self._known.items():
            if nid in seen or known.cancelled or known.payload is None or known.end <= now:
                continue
            known.cancelled = True
            known.modification += 1
            known.response_required = False  # the VTN has no such event left to answer for
            cancel = {**known.payload, "modification": known.modification, "cancelled": True}
            log.info("openadr2b_event_withdrawn", event_id=known.oadr_id)
            self._put(json.dumps(cancel).encode(), known.oadr_id)

    def _put(self, payload: bytes, oadr_id: str) -> None:
        msg = InboundGridMessage(payload=payload, origin=f"openadr2b:{oadr_id}")
        try:
            self._inbox.put_nowait(msg)
        except asyncio.QueueFull:
            # Hundreds of events waiting unread: the agent is stuck, not the VTN; the next
            # oadrRequestEvent (after a restart) brings them again.
            self._known.pop(native_id(oadr_id), None)
            log.error("openadr2b_inbox_full", event_id=oadr_id)

    async def _send_answers(self) -> None:
        if not self._answers:
            return
        batch = list(self._answers)
        msg = await self._post("EiEvent", wire.created_event(self._ven(), batch))
        for _ in batch:
            self._answers.popleft()
        try:
            _ok(msg, "oadrCreatedEvent", "oadrResponse")
        except VtnError as e:
            # Refused (e.g. an event it no longer has): sending it again would not help.
            log.warning("openadr2b_answer_refused", error=str(e), answers=len(batch))
        else:
            for a in batch:
                log.info(
                    "openadr2b_answered",
                    event_id=a.event_id,
                    modification=a.modification,
                    opt_type=a.opt_type,
                )

    # -- reports --------------------------------------------------------------------------

    async def _send_reports(self) -> None:
        now = self.clock.now()
        for sched in list(self._reports.values()):
            if sched.due > now:
                continue
            through = sched.through(now)
            values = sched.intervals(self._samples, now)
            if values:
                body = wire.update_report(
                    self._request_id(),
                    self._ven(),
                    report_id=f"{sched.request.request_id}-{sched.sent + 1}",
                    report_request_id=sched.request.request_id,
                    specifier_id=sched.request.specifier_id,
                    r_id=sched.r_id,
                    values=values,
                    created=now,
                )
                msg = await self._post("EiReport", body)
                _ok(msg, "oadrUpdateReport", "oadrUpdatedReport", "oadrResponse")
            sched.done(through, now)
        if self._reports:
            oldest = min(s.reported_to for s in self._reports.values())
            self._samples.forget_before(oldest)

    async def _pause(self) -> None:
        """Until the next poll or report, or sooner when an answer is queued."""
        if self._answers:
            return
        wait_s = self.poll_s
        now = self.clock.now()
        for sched in self._reports.values():
            wait_s = min(wait_s, max((sched.due - now).total_seconds(), 0.0))
        self._wake.clear()
        sleeper = asyncio.ensure_future(self.clock.sleep(wait_s))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            for task in (sleeper, waker):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
