"""A light site emulator: a counterpart that speaks the site contract over a real broker,
many per process (the fleet tests' sites and the bench's 1 000).

Each `EmulatedSite` has its own MQTT connection (its retained status, its last will), and
publishes a flexibility offer (retained), answers events (`received`, then `opt_in` with the
values asked, or `opt_out`), sends telemetry whose import is `baseline − delivery × asked
kW` (with the running interval's baseline when it `states_baseline`) and one report per
ended interval, then `completed`. No building, no devices: a steady (or steadily moving)
baseline and a knob (`delivery`) for how much of what it is asked it delivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import aiomqtt
import structlog

from devices.clock import Clock
from devices.mqtt_connect import MqttSettings, mqtt_client, subscribe
from vpp.broker import connection
from vpp.fleet.period import every
from vpp.grid.ledger import EventState, decide, opted_in, opted_out
from vpp.grid.ledger import completed as completed_state
from vpp.grid.messages import (
    Event,
    ExtendedTelemetry,
    Report,
    ReportInterval,
    Response,
    Telemetry,
)
from vpp.grid.offers import OFFER_DURATIONS, Offer, OfferRequest, OfferWindow
from vpp.grid.parse import MessageError, Rejection, parse_event, parse_message
from vpp.grid.topics import SiteTopics
from vpp.site import BrokerConfig

log = structlog.get_logger(__name__)
QUARTER = timedelta(minutes=15)
_JUST_BEFORE = timedelta(microseconds=1)
_HOUR = timedelta(hours=1)


@dataclass
class SiteSpec:
    """What an emulated site is: its steady import and the flexibility it offers."""

    site_id: str
    baseline_kw: float = 200.0
    capacity_kw: float = 50.0
    """The kW it offers to shed (curtail_kw of every window)."""
    p90_share: float = 0.9
    """curtail_kw_p90 ÷ curtail_kw of its windows."""
    cost_per_kwh: float = 1.0
    notice: timedelta = timedelta(0)
    min_rest: timedelta = timedelta(0)
    horizon: timedelta = timedelta(hours=6)
    """Its offer's windows start over this span from now + notice."""
    delivery: float = 1.0
    """Share of the asked kW it delivers (changeable while it runs)."""
    opt_out: bool = False
    """Answers every event `opt_out`."""
    telemetry_s: float = 5.0
    ramp_kw_per_h: float = 0.0
    """How fast its baseline moves from `baseline_kw` at its start (kW per hour): a base
    load rising through the afternoon."""
    states_baseline: bool = False
    """Its telemetry states the running interval's baseline (the grid extension's
    `baseline_kw`) while it acts in an event."""


def make_offer(spec: SiteSpec, now: datetime, request_id: str | None = None) -> Offer:
    """The site's offer at `now`: quarter-hour starts from `now + notice` over its horizon,
    every duration of OFFER_DURATIONS, `capacity_kw` each at `cost_per_kwh`."""
    first = _ceil_quarter(now + spec.notice)
    starts = int(spec.horizon / QUARTER)
    windows = [
        OfferWindow(
            start=first + k * QUARTER,
            duration=d,
            curtail_kw=spec.capacity_kw,
            curtail_kw_p90=round(spec.capacity_kw * spec.p90_share, 3),
            import_cap_kw=spec.baseline_kw - spec.capacity_kw,
            cost_per_kwh=spec.cost_per_kwh,
        )
        for k in range(starts)
        for d in OFFER_DURATIONS
    ]
    return Offer(
        site_id=spec.site_id,
        offer_id=f"{spec.site_id}-{int(now.timestamp())}",
        request_id=request_id,
        created=now,
        valid_until=now + spec.horizon,
        notice=spec.notice,
        min_rest=spec.min_rest,
        windows=windows,
    )


def _ceil_quarter(t: datetime) -> datetime:
    base = t.replace(minute=0, second=0, microsecond=0)
    quarters = math.ceil((t - base) / QUARTER)
    return base + quarters * QUARTER


@dataclass
class _Measured:
    """Sums of the telemetry samples per interval of one event."""

    sums: dict[int, float] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    reported: int = 0


class EmulatedSite:
    """One emulated site on its own MQTT connection (see the module docstring)."""

    def __init__(self, spec: SiteSpec, broker: BrokerConfig, clock: Clock) -> None:
        self.spec = spec
        self.clock = clock
        self.topics = SiteTopics(broker.prefix, spec.site_id)
        # The broker's protocol (3.1.1 for NATS) and nodes, as the aggregator's and a site's.
        self._settings = connection(broker)
        self.states: dict[str, EventState] = {}
        self._measured: dict[str, _Measured] = {}
        self.received: list[Event] = []
        """Every valid event message it got, in order (for tests and the bench)."""
        self.received_at: list[datetime] = []
        """When each of `received` arrived (its clock; the bench's fan-out times)."""
        self.rejected = 0
        self.offers_sent = 0
        self._client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self._t0 = clock.now()

    async def run(self, connect_slots: asyncio.Semaphore | None = None) -> None:
        """Connect, announce, answer and report until cancelled; a lost connection or a
        refused subscription (NATS: its JetStream consumer not made in 5 s) is tried again
        a second later on the broker's next node. `connect_slots` bounds how many sites
        of one emulator connect at once (a thousand at once time out on NATS)."""
        node = 0
        while True:
            try:
                await self._serve(self._settings.node(node), connect_slots)
            except* aiomqtt.MqttError as eg:
                self.connected.clear()
                log.info(
                    "emulated_site_reconnects", site=self.spec.site_id, error=str(eg.exceptions[0])
                )
                node += 1
                await self.clock.sleep(1.0)

    async def _serve(self, settings: MqttSettings, slots: asyncio.Semaphore | None) -> None:
        status = self.topics.status
        will = aiomqtt.Will(status.name, b'{"online":false,"v":1}', qos=1, retain=True)
        async with contextlib.AsyncExitStack() as stack:
            if slots is not None:
                await slots.acquire()  # held while connecting and subscribing
            try:
                client = await stack.enter_async_context(
                    mqtt_client(
                        settings,
                        identifier=f"vpp-emu-{self.spec.site_id}",
                        will=will,
                        clean_session=False,
                        timeout=10,
                    )
                )
                self._client = client
                async with self.clock.hold():
                    await subscribe(client, self.topics.events.name, qos=1)
                    await subscribe(client, self.topics.offer_requests.name, qos=1)
                    await self._publish(status.name, b'{"online":true,"v":1}', retain=True)
                    await self._publish_offer(None)
            finally:
                if slots is not None:
                    slots.release()
            self.connected.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._listen(client))
                tg.create_task(self._tick())

    async def go_offline(self) -> None:
        """Announce offline (retained, as a clean agent shutdown does) and stop answering."""
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._publish(self.topics.status.name, b'{"online":false,"v":1}', retain=True)

    def crash(self) -> None:
        """Drop the connection as a killed agent does (no DISCONNECT): the broker publishes
        the site's last will (offline, retained)."""
        if self._client is not None:
            sock = self._client._client.socket()  # paho's socket: aiomqtt has no abort
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def reap(self) -> None:
        """Read the lost connection's error (aiomqtt keeps it in a future no one awaits
        after a crash; unread, asyncio warns when it is collected)."""
        fut = getattr(self._client, "_disconnected", None)
        if isinstance(fut, asyncio.Future) and fut.done() and not fut.cancelled():
            fut.exception()

    async def _publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        assert self._client is not None
        async with self.clock.hold():
            await self._client.publish(topic, payload, qos=qos, retain=retain)

    async def _publish_offer(self, request_id: str | None) -> None:
        offer = make_offer(self.spec, self.clock.now(), request_id)
        self.offers_sent += 1
        await self._publish(self.topics.offers.name, offer.to_json(), retain=True)

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for m in client.messages:
            data = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
            if m.topic.matches(self.topics.offer_requests.name):
                try:
                    req = parse_message(OfferRequest, data)
                except MessageError:
                    continue
                await self._publish_offer(req.request_id)
            else:
                await self._on_event(data)

    async def _answer(self, response: Response) -> None:
        await self._publish(self.topics.responses.name, response.to_json())

    async def _on_event(self, data: bytes) -> None:
        now = self.clock.now()
        parsed = parse_event(data, now)
        if isinstance(parsed, Rejection):
            self.rejected += 1
            await self._answer(parsed.response)
            return
        self.received.append(parsed)
        self.received_at.append(now)
        decision = decide(self.states, parsed, now)
        if decision.state is not None:
            self.states[parsed.event_id] = decision.state
        for r in decision.responses:
            await self._answer(r)
        if not decision.plan or decision.state is None:
            return
        if self.spec.opt_out:
            state, resp = opted_out(decision.state, "emulated site opts out", now)
        else:
            values = [iv.value for iv in parsed.intervals]
            state, resp = opted_in(decision.state, values, now)
        self.states[parsed.event_id] = state
        self._measured.setdefault(parsed.event_id, _Measured())
        await self._answer(resp)

    def asked_kw(self, now: datetime) -> float:
        """The kW it is asked to shed at `now` (0 outside its opted-in events)."""
        for st in self.states.values():
            if st.status != "opt_in" or st.event.test:
                continue
            for iv in st.event.intervals:
                if iv.start <= now < iv.end:
                    return iv.value
        return 0.0

    def baseline_at(self, now: datetime) -> float:
        """Its baseline at `now` (kW): `baseline_kw` moved by its ramp since its start."""
        return self.spec.baseline_kw + self.spec.ramp_kw_per_h * (now - self._t0) / _HOUR

    def interval_baseline(self, start: datetime, end: datetime) -> float:
        """Its baseline's mean over an interval (kW; the ramp is linear: at the middle)."""
        return round(self.baseline_at(start + (end - start) / 2), 3)

    def import_kw(self, now: datetime) -> float:
        """Its import at `now`: baseline − delivery × asked (kW); while it acts, the running
        interval's baseline (its closed loop holds the interval's target flat)."""
        base = self.stated_baseline(now)
        if base is None:
            base = self.baseline_at(now)
        return base - self.spec.delivery * self.asked_kw(now)

    def stated_baseline(self, now: datetime) -> float | None:
        """The baseline of the interval it acts in at `now` (kW), if any."""
        for st in self.states.values():
            if st.status != "opt_in" or st.event.test:
                continue
            for iv in st.event.intervals:
                if iv.start <= now < iv.end:
                    return self.interval_baseline(iv.start, iv.end)
        return None

    async def _tick(self) -> None:
        async for now in every(self.clock, self.spec.telemetry_s):
            # The period's mean: what it was asked up to now (a new interval begins at now).
            kw = round(self.import_kw(now - _JUST_BEFORE), 3)
            self._sample(now, kw)
            base = self.stated_baseline(now - _JUST_BEFORE) if self.spec.states_baseline else None
            t = (
                ExtendedTelemetry(ts=now, site_import_kw=kw, devices={}, baseline_kw=base)
                if base is not None
                else Telemetry(ts=now, site_import_kw=kw, devices={})
            )
            await self._publish(self.topics.telemetry.name, t.to_json(), qos=0)
            await self._report(now)

    def _sample(self, now: datetime, kw: float) -> None:
        for eid, st in self.states.items():
            m = self._measured.get(eid)
            if m is None or st.status != "opt_in":
                continue
            for k, iv in enumerate(st.event.intervals):
                # A sample at an interval's end closes it (its mean is of the period before).
                if iv.start < now <= iv.end:
                    m.sums[k] = m.sums.get(k, 0.0) + kw
                    m.counts[k] = m.counts.get(k, 0) + 1

    async def _report(self, now: datetime) -> None:
        for eid, st in list(self.states.items()):
            m = self._measured.get(eid)
            if m is None or st.status != "opt_in":
                continue
            ended = sum(1 for iv in st.event.intervals if iv.end <= now)
            if ended <= m.reported:
                continue
            m.reported = ended
            await self._publish(self.topics.reports.name, self._report_of(st, m, ended).to_json())
            if ended == len(st.event.intervals):
                state, resp = completed_state(st, now)
                self.states[eid] = state
                await self._answer(resp)

    def _report_of(self, st: EventState, m: _Measured, ended: int) -> Report:
        rows = []
        for k, iv in enumerate(st.event.intervals[:ended]):
            base = self.interval_baseline(iv.start, iv.end)
            actual = m.sums[k] / m.counts[k] if m.counts.get(k) else None
            rows.append(
                ReportInterval(
                    start=iv.start,
                    duration=iv.duration,
                    requested_kw=iv.value,
                    baseline_kw=base,
                    actual_kw=None if actual is None else round(actual, 3),
                    delivered_kw=None if actual is None else round(base - actual, 3),
                )
            )
        req = sum(r.requested_kw or 0.0 for r in rows)
        dlv = sum(r.delivered_kw or 0.0 for r in rows)
        return Report(
            event_id=st.event_id,
            modification=st.modification,
            program=st.event.program,
            baseline_method="emulated",
            delivered_ratio=round(dlv / req, 4) if req > 0 else None,
            comfort_violation_degC_h=0.0,
            intervals=rows,
        )


class Emulator:
    """Many emulated sites in one process, each on its own connection and task; an async
    context manager that starts them all and stops them on exit."""

    def __init__(
        self,
        specs: list[SiteSpec],
        broker: BrokerConfig,
        clock: Clock,
        *,
        connecting_at_once: int = 50,
    ) -> None:
        self.sites = {s.site_id: EmulatedSite(s, broker, clock) for s in specs}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(connecting_at_once)

    async def __aenter__(self) -> Emulator:
        for site_id, site in self.sites.items():
            task = asyncio.create_task(site.run(self._slots), name=f"emu-{site_id}")
            self._tasks[site_id] = task
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self._tasks.values():
            t.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def started(self) -> None:
        """Wait until every site is connected and has published its offer."""
        await asyncio.gather(*(s.connected.wait() for s in self.sites.values()))

    async def take_offline(self, site_id: str, *, crash: bool = False) -> None:
        """The site's agent stops: status offline (retained; with `crash`, by the broker's
        last will), no more answers or telemetry."""
        if crash:
            self.sites[site_id].crash()
        else:
            await self.sites[site_id].go_offline()
        task = self._tasks[site_id]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self.sites[site_id].reap()
