"""The Poller: polls every device on its own fixed-phase period, keeps the latest reading and
health of each, and backs off from devices that fail without holding up the others.

Timing rules (per device, on the injected clock):
- Ticks sit on a fixed grid `start + phase + k × period`; with `stagger` the phases of
  devices sharing a period are spread evenly across it, so a site does not burst all its
  requests at the same instant.
- A missed tick (the previous poll overran it) is skipped, never run late, and counted in
  `PollStats.missed_ticks`.
- After n consecutive failures the next attempt waits min(2^(n-1), max_backoff_s / period)
  periods (still on the grid); the first retry is at the very next tick.
- Health: a device is `degraded` after its first failed poll and `offline` after
  `offline_after` consecutive ones, or at once when its connection is lost (refused/reset).
  Before its first answer a device is `offline` ("not polled yet", then the failure reason).
  One log line when a device fails (leaves `online`), one when it recovers.
- A `SelfReporting` driver (MQTT) is also read between ticks, when its device says something
  (telemetry, availability offline) or its telemetry turns stale: only a failure is taken
  from such a read (the reading itself waits for the tick, so readings keep their cadence).
- Writes count too (`write_failed`, `write_succeeded`, told by whoever writes): a device that
  answers reads but refuses writes is `degraded` after one refused write and `offline` after
  `offline_after` in a row (the agent then leaves it out of control, as an unreachable one),
  with the write's reason. It stays offline, whatever its reads, until a retry time on the
  poll backoff has passed; then `degraded` again, so that the next write tries it. A write
  that fails on a lost connection is left to the polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

import structlog

from devices.clock import Clock, timeout
from devices.driver import DeviceError, Driver, Reading, SelfReporting
from devices.health import Health, HealthState
from devices.plausible import Bounds, implausible

log = structlog.get_logger("devices.poller")


@dataclass(frozen=True)
class HealthChange:
    """A device's health moved from `previous` to `health`."""

    device_id: str
    health: Health
    previous: Health


@dataclass(frozen=True)
class PollStats:
    """Counters since start (or `reset_stats`), and poll-start lateness (seconds after the
    scheduled tick) over each device's last 1000 polls: a bounded window, so a long run's
    memory does not grow with its polls."""

    devices: int
    polls: int
    failing_devices: int
    missed_ticks: int
    lateness_p50_s: float
    lateness_p99_s: float
    lateness_max_s: float


@dataclass(frozen=True)
class DevicePollStats:
    """One device's polls since start: how many, how many failed, and the time they took
    (seconds on the poller's clock), for metrics."""

    polls: int
    failures: int
    duration_total_s: float
    last_duration_s: float


@dataclass
class _DeviceState:
    driver: Driver
    period_s: float
    phase_s: float
    health: Health
    latest: Reading | None = None
    failures: int = 0
    failed_logged: bool = False
    polls: int = 0
    missed: int = 0
    lateness: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    bounds: Bounds | None = None  # the device's own plausible ranges
    write_failures: int = 0
    write_error: DeviceError | None = None
    write_retry_at: float | None = None  # clock monotonic s; None: not held offline
    # Counted since start and never reset (metrics' counters), unlike `polls` and `missed`.
    total_polls: int = 0
    total_failures: int = 0
    duration_total_s: float = 0.0
    last_duration_s: float = 0.0


_WORSE = {HealthState.online: 0, HealthState.degraded: 1, HealthState.offline: 2}


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[i]


class Poller:
    """Polls `drivers` concurrently; an async context manager that owns its tasks.

    `period_s` is the default poll period; `periods` overrides it per device id. With
    `stagger`, devices sharing a period get phases spread over it, each phase a multiple of
    `stagger_slot_s`.
    With `read_at_start` every device is also read once as the poller starts, so that one
    on a long period (a 60-s load group) is known at once, not after up to a period.
    `bounds` are, per device id, the ranges its readings must stay in (its rating and direction:
    devices.plausible); a reading outside them counts as a failed poll.
    """

    def __init__(
        self,
        drivers: Iterable[Driver],
        *,
        clock: Clock,
        period_s: float = 1.0,
        periods: Mapping[str, float] | None = None,
        offline_after: int = 2,
        max_backoff_s: float = 30.0,
        stagger: bool = True,
        stagger_slot_s: float = 0.01,
        bounds: Mapping[str, Bounds] | None = None,
        read_at_start: bool = False,
    ) -> None:
        if period_s <= 0:
            raise ValueError(f"period_s must be positive, got {period_s}")
        if offline_after < 1:
            raise ValueError(f"offline_after must be at least 1, got {offline_after}")
        self._clock = clock
        self._read_at_start = read_at_start
        self._offline_after = offline_after
        self._max_backoff_s = max_backoff_s
        drivers = list(drivers)
        periods = dict(periods or {})
        ids = [d.id for d in drivers]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"device ids must be unique: {', '.join(dup)}")
        unknown = sorted(set(periods) - set(ids))
        if unknown:
            raise ValueError(f"periods name unknown devices: {', '.join(unknown)}")
        bounds = dict(bounds or {})
        unknown = sorted(set(bounds) - set(ids))
        if unknown:
            raise ValueError(f"bounds name unknown devices: {', '.join(unknown)}")
        by_period: dict[float, list[Driver]] = {}
        for d in drivers:
            p = periods.get(d.id, period_s)
            if p <= 0:
                raise ValueError(f"periods.{d.id} must be positive, got {p}")
            by_period.setdefault(p, []).append(d)
        self._states: dict[str, _DeviceState] = {}
        now = clock.now()
        for p, group in by_period.items():
            # Phases sit on slots of `stagger_slot_s`, so devices sharing a slot wake together
            # (one loop wake-up for many polls instead of one each); a site's slot is its
            # control cycle, so every poll lands on an instant the agent wakes anyway.
            slots = max(1, min(len(group), math.floor(p / stagger_slot_s + 1e-9)))
            for i, d in enumerate(group):
                spread = p * math.floor(i * slots / len(group)) / slots
                phase = stagger_slot_s * math.floor(spread / stagger_slot_s + 1e-9)
                phase = phase if stagger else 0.0
                self._states[d.id] = _DeviceState(
                    d, p, phase, Health.starting(now), bounds=bounds.get(d.id)
                )
        self._subscribers: list[asyncio.Queue[HealthChange]] = []
        self.changes = 0
        """Readings and health changes so far: two looks at the same count (and instant) see
        the same devices."""
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False
        self._t0 = 0.0

    # -- service lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Poller:
        self._t0 = self._clock.monotonic()
        self._runner = asyncio.create_task(self._run(), name="poller")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Cancel every poll loop and close every driver."""
        # Python 3.11's asyncio.wait_for (used inside pymodbus) can swallow a cancellation
        # that races with an answer; the flag ends such a loop at its next step anyway.
        self._stopping = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        for st in self._states.values():
            try:
                await st.driver.close()
            except Exception as e:  # a driver's close must not keep the others open
                log.warning("driver_close_failed", device_id=st.driver.id, error=repr(e))

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for st in self._states.values():
                tg.create_task(self._poll_loop(st), name=f"poll-{st.driver.id}")
                if isinstance(st.driver, SelfReporting):
                    tg.create_task(self._watch_loop(st, st.driver), name=f"watch-{st.driver.id}")

    # -- queries -----------------------------------------------------------------------

    @property
    def device_ids(self) -> list[str]:
        """Ids of the polled devices, in the order given."""
        return list(self._states)

    def driver(self, device_id: str) -> Driver:
        """The driver of a device (for writes)."""
        return self._state(device_id).driver

    def latest(self, device_id: str) -> Reading | None:
        """The last good reading of a device; None until it has answered once."""
        return self._state(device_id).latest

    def health(self, device_id: str) -> Health:
        """The device's current health (offline "not polled yet" before its first poll)."""
        return self._state(device_id).health

    def snapshot(self) -> dict[str, Reading]:
        """The last good reading of every device that has answered at least once."""
        return {i: st.latest for i, st in self._states.items() if st.latest is not None}

    def subscribe(self) -> asyncio.Queue[HealthChange]:
        """A queue that receives every health change from now on."""
        q: asyncio.Queue[HealthChange] = asyncio.Queue()
        self._subscribers.append(q)
        return q

    def stats(self) -> PollStats:
        """Poll counters and lateness percentiles (last 1000 polls of each device)."""
        late = sorted(x for st in self._states.values() for x in st.lateness)
        return PollStats(
            devices=len(self._states),
            polls=sum(st.polls for st in self._states.values()),
            failing_devices=sum(1 for st in self._states.values() if st.failures),
            missed_ticks=sum(st.missed for st in self._states.values()),
            lateness_p50_s=_percentile(late, 0.50),
            lateness_p99_s=_percentile(late, 0.99),
            lateness_max_s=late[-1] if late else 0.0,
        )

    def device_stats(self) -> dict[str, DevicePollStats]:
        """Per device id: polls, failed polls and poll time since start (never reset)."""
        return {
            i: DevicePollStats(
                st.total_polls, st.total_failures, st.duration_total_s, st.last_duration_s
            )
            for i, st in self._states.items()
        }

    def reset_stats(self) -> None:
        """Forget lateness and counters (e.g. after a warm-up)."""
        for st in self._states.values():
            st.lateness.clear()
            st.polls = st.missed = 0

    def _state(self, device_id: str) -> _DeviceState:
        try:
            return self._states[device_id]
        except KeyError:
            raise KeyError(f"no polled device {device_id!r}") from None

    # -- the loop ----------------------------------------------------------------------

    async def _poll_loop(self, st: _DeviceState) -> None:
        d, clock = st.driver, self._clock
        try:
            await d.start()
        except Exception as e:  # a driver bug at start is a failure to retry, not a crash
            self._failed(st, DeviceError(f"start failed: {e!r}", connection_lost=True))
        tick = self._t0 + st.phase_s
        if self._read_at_start and st.phase_s > 0:
            tick = self._t0  # once now, then on its phase: nobody waits a period to see it
        while not self._stopping:
            await clock.sleep_until(tick)
            if self._stopping:
                return
            st.lateness.append(clock.monotonic() - tick)
            st.polls += 1
            st.total_polls += 1
            began = clock.monotonic()
            try:
                reading = await d.read()
                bad = implausible(reading.values, st.bounds)
                if bad is not None:
                    raise DeviceError(bad)
            except DeviceError as e:
                st.total_failures += 1
                self._failed(st, e)
            except Exception as e:  # never let one driver's bug stop the agent
                st.total_failures += 1
                self._failed(st, DeviceError(f"driver error: {e!r}"))
            else:
                self._answered(st, reading)
            st.last_duration_s = clock.monotonic() - began
            st.duration_total_s += st.last_duration_s
            if tick < self._t0 + st.phase_s:  # the start's extra read: back to the phase
                tick = self._t0 + st.phase_s
            else:
                tick += st.period_s * self._wait_periods(st)
            now = clock.monotonic()
            if tick <= now:
                skipped = math.floor((now - tick) / st.period_s) + 1
                st.missed += skipped
                tick += skipped * st.period_s

    async def _watch_loop(self, st: _DeviceState, d: SelfReporting) -> None:
        """Read `d` when its device says something or its telemetry turns stale, so that an
        MQTT device polled every minute still leaves the plan within a control cycle."""
        clock = self._clock
        while not self._stopping:
            try:
                due = d.next_check_s()
            except Exception as e:  # a driver's bug must not end the Poller: back to polls
                self._noticed(st, DeviceError(f"driver error: {e!r}"))
                due = None
            if due is None:
                await d.changed.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await timeout(clock, max(0.0, due - clock.monotonic()), d.changed.wait())
            if self._stopping:
                return
            d.changed.clear()
            try:
                await st.driver.read()  # a good answer waits for the tick
            except DeviceError as e:
                self._noticed(st, e)
            except Exception as e:  # never let one driver's bug stop the agent
                self._noticed(st, DeviceError(f"driver error: {e!r}"))

    def _wait_periods(self, st: _DeviceState) -> int:
        if st.failures == 0:
            return 1
        cap = max(1, math.floor(self._max_backoff_s / st.period_s))
        return int(min(2 ** min(st.failures - 1, 30), cap))

    # -- writes ----------------------------------------------------------------------------

    def write_failed(self, device_id: str, e: DeviceError) -> None:
        """A write the device refused or never answered: its health says so. A lost
        connection is not a refusal: the next poll finds it (and its health says so)."""
        st = self._state(device_id)
        if e.connection_lost:
            return
        st.write_failures += 1
        st.write_error = e
        offline = st.write_failures >= self._offline_after
        if offline:
            st.write_retry_at = self._clock.monotonic() + st.period_s * min(
                2 ** min(st.write_failures - self._offline_after + 1, 30),
                max(1, math.floor(self._max_backoff_s / st.period_s)),
            )
        if st.write_failures == 1:
            log.warning(
                "device_write_failed",
                device_id=device_id,
                reason=e.reason,
                exception_code=e.exception_code,
            )
        if st.failures:
            return  # reads fail too: their health (offline, or degraded first) stands
        self._write_health(st, HealthState.offline if offline else HealthState.degraded)

    def write_succeeded(self, device_id: str) -> None:
        """A write the device took: refused writes before it are forgotten."""
        st = self._state(device_id)
        if not st.write_failures:
            return
        log.info("device_writes_recovered", device_id=device_id, after_failures=st.write_failures)
        st.write_failures = 0
        st.write_error = None
        st.write_retry_at = None
        if st.failures == 0 and st.latest is not None:
            self._set_health(st, Health.online(self._clock.now()))

    def _write_health(self, st: _DeviceState, state: HealthState) -> None:
        e = st.write_error
        assert e is not None
        reason = f"writes refused: {e.reason}"
        h = st.health
        if (h.state, h.reason, h.exception_code) != (state, reason, e.exception_code):
            since = h.since if h.state is state else self._clock.now()
            self._set_health(st, Health(state, reason, since, e.exception_code))

    def _answered(self, st: _DeviceState, reading: Reading) -> None:
        st.latest = reading
        self.changes += 1
        if st.failures and st.failed_logged:
            log.info(
                "device_recovered",
                device_id=st.driver.id,
                after_failures=st.failures,
                was=st.health.reason,
            )
        st.failures = 0
        st.failed_logged = False
        if st.write_failures:
            # Reads answer, writes do not: held offline until the retry time, then degraded
            # (usable) so that the next write tries again.
            held = st.write_retry_at is not None and self._clock.monotonic() < st.write_retry_at
            self._write_health(st, HealthState.offline if held else HealthState.degraded)
            return
        if st.health.state is not HealthState.online:
            self._set_health(st, Health.online(self._clock.now()))

    def _failed(self, st: _DeviceState, e: DeviceError) -> None:
        st.failures += 1
        # A device that never answered stays offline: there is nothing usable to degrade.
        offline = e.connection_lost or st.failures >= self._offline_after or st.latest is None
        self._fail_health(st, e, HealthState.offline if offline else HealthState.degraded)

    def _noticed(self, st: _DeviceState, e: DeviceError) -> None:
        """A failure found between ticks (a SelfReporting driver): it may make the health
        worse, but is no failed poll (neither backoff nor `offline_after` count it)."""
        offline = e.connection_lost or st.latest is None
        state = HealthState.offline if offline else HealthState.degraded
        if _WORSE[state] >= _WORSE[st.health.state]:
            self._fail_health(st, e, state)

    def _fail_health(self, st: _DeviceState, e: DeviceError, state: HealthState) -> None:
        if not st.failed_logged:
            st.failed_logged = True
            log.warning(
                "device_failed",
                device_id=st.driver.id,
                reason=e.reason,
                state=str(state),
                exception_code=e.exception_code,
            )
        h = st.health
        if (h.state, h.reason, h.exception_code) != (state, e.reason, e.exception_code):
            since = h.since if h.state is state else self._clock.now()
            self._set_health(st, Health(state, e.reason, since, e.exception_code))

    def _set_health(self, st: _DeviceState, health: Health) -> None:
        change = HealthChange(st.driver.id, health, st.health)
        st.health = health
        self.changes += 1
        for q in self._subscribers:
            q.put_nowait(change)
