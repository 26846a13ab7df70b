"""Planning glue: the site, its live readings, forecasts and DR events → an optimiser
Problem; the Schedule → the current step's plan and the opt-in figures.

Each device's kind plugin (vpp.kinds) turns it into the optimiser's assets; the optimiser
itself never sees a device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from optimiser import (
    DrEvent,
    Planner,
    Problem,
    Schedule,
    SiteForecast,
    SolverOptions,
    TimeGrid,
)
from optimiser.inputs import Asset
from vpp.control.types import PlanStep, Snapshot
from vpp.dr.forecast import SiteSeries, TwinForecast
from vpp.grid.messages import Event
from vpp.kinds import plugin_for
from vpp.kinds.base import AssetCosts, PlanContext
from vpp.site import Site

STEP = timedelta(minutes=15)


def floor_step(t: datetime, step: timedelta = STEP) -> datetime:
    """Start of the planning step that contains `t`."""
    epoch = datetime(2000, 1, 1, tzinfo=t.tzinfo)
    return t - (t - epoch) % step


@dataclass
class Plan:
    """A schedule with the grid it was made on."""

    grid: TimeGrid
    schedule: Schedule
    made_at: datetime

    def index(self, t: datetime) -> int:
        return self.grid.step_of(t)

    def step(self, t: datetime) -> PlanStep:
        """What the plan says for the step containing `t` (an empty step outside it)."""
        k = self.index(t)
        s = self.schedule
        if not 0 <= k < self.grid.steps:
            return PlanStep()
        return PlanStep(
            power_kw={a: v[k] for a, v in s.power_kw.items()},
            zone_temp_c={a: v[k] for a, v in s.temperature_c.items()},
            site_import_kw=s.site_import_kw[k],
        )

    def import_at(self, t: datetime) -> float | None:
        k = self.index(t)
        return self.schedule.site_import_kw[k] if 0 <= k < self.grid.steps else None


class SitePlanner:
    """Keeps one persistent optimiser; `plan()` builds the problem from live data."""

    def __init__(
        self,
        site: Site,
        forecast: TwinForecast,
        *,
        steps: int = 96,
        time_limit_s: float = 10.0,
        load_shed_cost: float = 3.0,
        battery_cycle_cost: float = 0.25,
        import_headroom_kw: float = 28.0,
        tie_break_per_step: float = 1e-4,
        peak_guard_per_kw: float = 2.0,
        recovery_h: float = 2.0,
    ) -> None:
        self.site = site
        self.forecast = forecast
        self.steps = steps
        self.time_limit_s = time_limit_s
        self.load_shed_cost = load_shed_cost
        self.battery_cycle_cost = battery_cycle_cost
        self.import_headroom_kw = import_headroom_kw
        self.tie_break_per_step = tie_break_per_step
        # With events known: a price on a new peak for the day (pre-conditioning and the
        # catch-up after an event must not set one) and the rebound cap after each event.
        self.peak_guard_per_kw = peak_guard_per_kw
        self.recovery = timedelta(hours=recovery_h)
        # Two persistent models: one for plans without events (the forecast baselines), one
        # for plans with them. One model switching between the two kinds of problem is handed
        # to HiGHS again at every switch (about a third of a solve at 100 devices).
        self.optimiser = Planner()
        self.event_optimiser = Planner()
        self.last: Plan | None = None

    def _assets(
        self,
        snap: Snapshot,
        grid: TimeGrid,
        series: SiteSeries,
        plan_inputs: Mapping[str, object],
        excluded: set[str],
    ) -> list[Asset]:
        ctx = PlanContext(
            ts=snap.ts,
            grid=grid,
            import_price=series.import_price,
            device_series=series.device_series,
            costs=AssetCosts(
                battery_cycle_cost=self.battery_cycle_cost,
                load_shed_cost=self.load_shed_cost,
            ),
        )
        assets: list[Asset] = []
        for d in self.site.devices:
            view = snap.devices.get(d.id)
            if view is None or not view.usable or d.id in excluded:
                continue  # an offline device is left out of the plan
            plugin = plugin_for(d.kind)
            model = self.forecast.device_params(d.id)
            assets += plugin.assets(d, view, model, ctx, plan_inputs.get(d.id))
        return assets

    def problem(
        self,
        snap: Snapshot,
        events: list[Event],
        baseline_kw: dict[datetime, float],
        plan_inputs: Mapping[str, object],
        excluded: set[str],
        day_peak_kw: float = 0.0,
    ) -> Problem:
        """The optimiser's input for a plan made now (`day_peak_kw`: the import peak measured
        today, which a plan with events keeps)."""
        grid = TimeGrid(start=floor_step(snap.ts), step=STEP, steps=self.steps)
        series = self.forecast.series(grid)
        limits = self.site.config.limits
        tariff = self.forecast.tariff
        # Equal prices leave an LP free to put the battery's cycle (or a zone's pre-cooling)
        # in any of the hours that share a price, and successive plans would pick different
        # ones: a baseline forecast made from one plan would not describe what the site does
        # later. A tiny rise per step (1e-4 a step, under 0.01 over a day) breaks the ties
        # the same way in every plan: energy is bought as early as an equal price allows.
        import_price = [p + self.tie_break_per_step * k for k, p in enumerate(series.import_price)]
        dr: list[DrEvent] = []
        for ev in events:
            for iv in ev.intervals:
                dr.append(
                    DrEvent(
                        kind=ev.signal,
                        start=iv.start,
                        end=iv.end,
                        value=iv.value,
                        event_id=ev.event_id,
                    )
                )
        grid_events = [e for e in dr if e.kind != "price"]
        if grid_events and limits.rebound_cap_kw is not None:
            for e in grid_events:
                dr.append(
                    DrEvent(
                        kind="import_cap_kw",
                        start=e.end,
                        end=e.end + self.recovery,
                        value=limits.rebound_cap_kw,
                        event_id=f"{e.event_id}:recovery",
                    )
                )
        demand_charge = tariff.demand_charge_per_kw
        peak_so_far = 0.0
        if grid_events:
            demand_charge = max(demand_charge, self.peak_guard_per_kw)
            peak_so_far = max(0.0, day_peak_kw)  # a site that only exported so far: no peak yet
        baseline = None
        if any(e.kind == "curtail_kw" for e in dr):
            fallback = self.last.schedule.site_import_kw if self.last else None
            baseline = []
            for k in range(grid.steps):
                t = grid.start + grid.step * k
                b = baseline_kw.get(t)
                if b is None and self.last is not None and fallback is not None:
                    b = self.last.import_at(t)
                baseline.append(max(0.0, b if b is not None else series.base_load_kw[k]))
        return Problem(
            grid=grid,
            site=SiteForecast(
                base_load_kw=series.base_load_kw,
                pv_kw=series.pv_kw,
                outdoor_temp_c=series.outdoor_temp_c,
                import_price=import_price,
                export_price=series.export_price,
                # Planned under the limit by the closed loop's margin: a plan at the limit would
                # switch the site-limit loop on and off around it every few cycles.
                import_limit_kw=max(0.0, limits.import_kw - self.import_headroom_kw),
                import_limit_hard=limits.import_hard,
                export_limit_kw=max(limits.export_kw, 1e-6),
                demand_charge=demand_charge,
                peak_so_far_kw=peak_so_far,
                carbon_kg_per_kwh=series.carbon_kg_per_kwh,
                carbon_price=tariff.carbon_price_per_kg,
            ),
            assets=self._assets(snap, grid, series, plan_inputs, excluded),
            events=dr,
            baseline_kw=baseline,
            solver=SolverOptions(time_limit_s=self.time_limit_s),
        )

    def plan(self, problem: Problem, made_at: datetime) -> Plan:
        """Solve (always answers: the fallback when the solver cannot) and keep the plan."""
        optimiser = self.event_optimiser if problem.events else self.optimiser
        schedule = optimiser.plan(problem)
        self.last = Plan(problem.grid, schedule, made_at)
        return self.last


def expected_delivery(plan: Plan, event: Event, baseline_kw: dict[datetime, float]) -> list[float]:
    """Per interval of `event`, the reduction (curtail) or cap (import or export) the plan
    expects to meet, or for an import target the import it expects (kW); 0 for price and
    carbon."""
    out = []
    for iv in event.intervals:
        steps = []
        t = floor_step(iv.start)
        while t < iv.end:
            steps.append(t)
            t += STEP
        predicted = [p for s in steps if (p := plan.import_at(s)) is not None]
        if not predicted:
            out.append(0.0)
            continue
        mean_import = sum(predicted) / len(predicted)
        if event.signal == "curtail_kw":
            bases = [baseline_kw.get(s) for s in steps]
            known = [b for b in bases if b is not None]
            base = sum(known) / len(known) if known else mean_import + iv.value
            out.append(round(max(0.0, min(iv.value, base - mean_import)), 3))
        elif event.signal == "import_cap_kw":
            out.append(round(iv.value if mean_import <= iv.value + 1e-6 else mean_import, 3))
        elif event.signal == "import_target_kw":
            # The import the plan foresees: the target, or as near as the devices allow.
            out.append(round(mean_import, 3))
        elif event.signal == "export_cap_kw":
            export = -min(predicted)  # the step that exports most
            out.append(round(iv.value if export <= iv.value + 1e-6 else export, 3))
        else:
            out.append(0.0)
    return out
