"""Flexibility offers from the optimiser (docs/grid-messages.md, "Flexibility offers").

Per window (a start on the quarter hour from the notice on × a duration of OFFER_DURATIONS
within the plan's horizon), the largest flat reduction below the control baseline the
planner can hold in every 15-min step of the window, found by solving the planner's own
problem with a hypothetical curtailment (the site's planned events kept in it):

1. a deep ask (a curtailment as deep as the baseline and the export limit allow): the plan
   holds its weakest step's reduction in every step (a lower bound), and no flat reduction
   above the mean of its steps' (an upper bound: the deep ask sheds all it can);
2. while the bounds differ by more than `tol_kw`, at most `refine` bisection solves;
3. the plan of exactly that reduction: its objective over the plan without it (the demand
   terms left out: the planner's peak guard is a price of its own, not a cost) per kWh
   shed is `cost_per_kwh`, its highest import in the window `import_cap_kw`.

`curtail_kw_p90` is the reduction times the site's confidence factor (vpp.dr.delivery_record).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

import structlog

from devices.clock import Clock
from optimiser import Schedule
from vpp.control.types import Snapshot
from vpp.dr.forecast import TwinForecast
from vpp.dr.planning import STEP, Plan, SitePlanner, expected_delivery, floor_step
from vpp.grid.messages import Event
from vpp.grid.offers import OFFER_DURATIONS, OfferWindow
from vpp.site import OfferConfig, Site

log = structlog.get_logger(__name__)

T = TypeVar("T")
SolveRunner = Callable[[Callable[[], T]], Awaitable[T]]
"""Runs one solve (a callable) where the site's solves run: a worker thread live, inline on
the virtual clock; one solve at a time with the DR controller's."""

PROBE_ID = "offer-probe"


def ceil_step(t: datetime) -> datetime:
    """The first quarter hour at or after `t`."""
    start = floor_step(t)
    return start if start == t else start + STEP


def offer_windows(
    now: datetime, config: OfferConfig, plan_end: datetime
) -> list[tuple[datetime, timedelta]]:
    """(start, duration) of each window: starts from the quarter hour `notice_min` ahead,
    every `start_every_min`, over `horizon_h`; each of OFFER_DURATIONS ending by `plan_end`."""
    first = ceil_step(now + timedelta(minutes=config.notice_min))
    last = first + timedelta(hours=config.horizon_h)
    every = timedelta(minutes=config.start_every_min)
    out = []
    start = first
    while start < last:
        out += [(start, d) for d in OFFER_DURATIONS if start + d <= plan_end]
        start += every
    return out


@dataclass(frozen=True)
class OfferInputs:
    """What the solves need, taken on the control loop (they may run in a worker thread)."""

    snapshot: Snapshot
    plan_inputs: Mapping[str, object]
    excluded: frozenset[str]
    day_peak_kw: float
    events: tuple[Event, ...]
    """The events the site plans now: its commitments stay in every solve."""
    baselines: Mapping[datetime, float]
    """Their control baselines (15-min starts → kW)."""
    confidence: float
    """The confidence factor of `curtail_kw_p90` (vpp.dr.delivery_record)."""


@dataclass
class OfferStats:
    """What one offer cost: solves, their solver seconds and the wall seconds of it all."""

    windows: int = 0
    solves: int = 0
    solve_s: float = 0.0
    wall_s: float = 0.0
    fallbacks: int = 0


@dataclass
class _Probe:
    value: float
    plan: Plan
    delivered: list[float]

    def met(self, tol_kw: float) -> bool:
        return bool(self.delivered) and min(self.delivered) >= self.value - tol_kw


@dataclass
class _Context:
    inputs: OfferInputs
    baseline: dict[datetime, float]
    reference: Schedule
    stats: OfferStats = field(default_factory=OfferStats)


Baseline = Callable[[Event, Plan], dict[datetime, float]]
"""The control baseline an event would get, given the plan of the site without events."""


class OfferMaker:
    """Computes an offer's windows with its own planner (its persistent models are not the
    controller's: the probes would otherwise rebuild them)."""

    def __init__(
        self,
        site: Site,
        clock: Clock,
        forecast: TwinForecast,
        *,
        run_solve: SolveRunner[Plan],
        baseline: Baseline,
        refine: int = 2,
        tol_kw: float = 1.0,
    ) -> None:
        self.site = site
        self.clock = clock
        self.config = site.config.grid.offers
        self.planner = SitePlanner(site, forecast)
        self._run_solve = run_solve
        self._baseline = baseline
        self.refine = refine
        self.tol_kw = tol_kw
        self.last_stats = OfferStats()

    async def windows(self, inputs: OfferInputs) -> list[OfferWindow]:
        """The offer's windows for the site as `inputs` describe it now."""
        t0 = time.perf_counter()  # our own compute time, not a clock of the plant
        stats = OfferStats()
        free = await self._solve(inputs, [], {}, stats)
        grid = free.grid
        specs = offer_windows(inputs.snapshot.ts, self.config, grid.start + grid.step * grid.steps)
        if not specs:
            return []
        span = self._probe(specs[0][0], max(s + d for s, d in specs) - specs[0][0], 0.0)
        baseline = self._baseline(span, free)
        reference = free
        if inputs.events:  # the plan with the site's commitments, without the window's ask
            reference = await self._solve(inputs, inputs.events, baseline, stats)
        ctx = _Context(inputs, baseline, reference.schedule, stats)
        out: list[OfferWindow] = []
        held: dict[datetime, float] = {}  # start → the reduction of its last (shorter) window
        for start, duration in specs:
            window = await self._window(ctx, start, duration, held.get(start))
            held[start] = window.curtail_kw
            out.append(window)
        ctx.stats.windows = len(out)
        ctx.stats.wall_s = time.perf_counter() - t0
        self.last_stats = ctx.stats
        log.info(
            "offer_made",
            windows=len(out),
            solves=ctx.stats.solves,
            solve_s=round(ctx.stats.solve_s, 3),
            wall_s=round(ctx.stats.wall_s, 3),
            confidence=round(inputs.confidence, 3),
        )
        return out

    async def _window(
        self, ctx: _Context, start: datetime, duration: timedelta, shorter_kw: float | None
    ) -> OfferWindow:
        steps = _steps(start, duration)
        bases = [ctx.baseline.get(t, 0.0) for t in steps]
        deep_kw = max(bases) + self.site.config.limits.export_kw
        if deep_kw <= self.tol_kw:
            return self._offer(ctx, start, duration, None)
        deep = await self._try(ctx, start, duration, deep_kw)
        if deep.plan.schedule.fallback or not deep.delivered:
            ctx.stats.fallbacks += 1
            return self._offer(ctx, start, duration, None)
        lo = min(deep.delivered)
        hi = sum(deep.delivered) / len(deep.delivered)
        if shorter_kw is not None:  # a longer window holds no more than a shorter one
            hi = min(hi, shorter_kw)
        best: _Probe | None = None
        for _ in range(self.refine):
            if hi - lo <= self.tol_kw:
                break
            probe = await self._try(ctx, start, duration, (lo + hi) / 2)
            lo = max(lo, min(probe.delivered, default=0.0))
            if probe.met(self.tol_kw / 2):
                lo, best = probe.value, probe
            else:
                hi = probe.value
        if best is None or best.value != lo:
            best = await self._try(ctx, start, duration, lo) if lo > self.tol_kw / 2 else None
        if best is not None and not best.met(self.tol_kw):
            ctx.stats.fallbacks += int(best.plan.schedule.fallback)
            best = None
        return self._offer(ctx, start, duration, best)

    def _offer(
        self, ctx: _Context, start: datetime, duration: timedelta, probe: _Probe | None
    ) -> OfferWindow:
        if probe is None:
            return OfferWindow(
                start=start, duration=duration, curtail_kw=0.0, curtail_kw_p90=0.0, cost_per_kwh=0.0
            )
        kw = round(max(0.0, min(probe.delivered)), 1)
        shed_kwh = kw * duration.total_seconds() / 3600
        extra = _cost(probe.plan.schedule) - _cost(ctx.reference)
        imports = [probe.plan.import_at(t) for t in _steps(start, duration)]
        cap = max((i for i in imports if i is not None), default=None)
        return OfferWindow(
            start=start,
            duration=duration,
            curtail_kw=kw,
            curtail_kw_p90=round(kw * ctx.inputs.confidence, 1),
            import_cap_kw=None if cap is None else round(max(0.0, cap), 1),
            cost_per_kwh=round(max(0.0, extra) / shed_kwh, 4) if shed_kwh > 0 else 0.0,
        )

    async def _try(self, ctx: _Context, start: datetime, duration: timedelta, kw: float) -> _Probe:
        probe = self._probe(start, duration, kw)
        plan = await self._solve(ctx.inputs, [*ctx.inputs.events, probe], ctx.baseline, ctx.stats)
        return _Probe(kw, plan, expected_delivery(plan, probe, ctx.baseline))

    def _probe(self, start: datetime, duration: timedelta, kw: float) -> Event:
        """A curtailment of `kw` from `start` for `duration`, in 15-min intervals."""
        return Event.model_validate(
            {
                "v": 1,
                "event_id": PROBE_ID,
                "modification": 0,
                "signal": "curtail_kw",
                "intervals": [
                    {"start": t, "duration": STEP, "value": round(kw, 3)}
                    for t in _steps(start, duration)
                ],
            }
        )

    async def _solve(
        self,
        inputs: OfferInputs,
        events: Sequence[Event],
        baseline: Mapping[datetime, float],
        stats: OfferStats,
    ) -> Plan:
        planner = self.planner
        # The commitments' own baselines where they have one (their targets are made on it).
        baselines = {**baseline, **inputs.baselines}

        def solve() -> Plan:
            problem = planner.problem(
                inputs.snapshot,
                list(events),
                baselines,
                inputs.plan_inputs,
                set(inputs.excluded),
                day_peak_kw=inputs.day_peak_kw,
            )
            return planner.plan(problem, inputs.snapshot.ts)

        plan = await self._run_solve(solve)
        # A scheduling point between solves: on the virtual clock they run in the loop's
        # thread, and the devices' Modbus answers (on wall-clock time-outs) must get through.
        await self.clock.sleep(0)
        stats.solves += 1
        stats.solve_s += plan.schedule.timings.solve_s
        return plan


def _steps(start: datetime, duration: timedelta) -> list[datetime]:
    n = max(1, round(duration / STEP))
    return [start + STEP * k for k in range(n)]


def _cost(s: Schedule) -> float:
    """The schedule's objective without its demand terms (the planner's peak guard)."""
    return s.cost.total - s.cost.demand
