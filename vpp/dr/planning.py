"""Planning glue: the site, its live readings, forecasts and DR events → an optimiser
Problem; the Schedule → the current step's plan and the opt-in figures.

Adapters here turn devices into the optimiser's assets (batteries, EV sessions, zones,
curtailable loads); the optimiser itself never sees a device.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from building.params import BatteryParams, HvacZoneParams
from devices.profile import Kind
from optimiser import (
    BatteryAsset,
    CurtailableLoadAsset,
    DrEvent,
    EvSession,
    Planner,
    Problem,
    Schedule,
    SiteForecast,
    SolverOptions,
    ThermalZoneAsset,
    TimeGrid,
)
from optimiser.inputs import Asset
from vpp.control.flex import EvFlex
from vpp.control.types import PlanStep, Snapshot
from vpp.dr.forecast import SiteSeries, TwinForecast
from vpp.grid.messages import Event
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
        load_max_shed_h: float = 4.0,
        battery_cycle_cost: float = 0.25,
        import_headroom_kw: float = 28.0,
        tie_break_per_step: float = 1e-4,
    ) -> None:
        self.site = site
        self.forecast = forecast
        self.steps = steps
        self.time_limit_s = time_limit_s
        self.load_shed_cost = load_shed_cost
        self.load_max_shed_h = load_max_shed_h
        self.battery_cycle_cost = battery_cycle_cost
        self.import_headroom_kw = import_headroom_kw
        self.tie_break_per_step = tie_break_per_step
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
        ev_flex: dict[str, EvFlex],
        excluded: set[str],
    ) -> list[Asset]:
        assets: list[Asset] = []
        dt_h = grid.dt_h
        for d in self.site.devices:
            view = snap.devices.get(d.id)
            if view is None or not view.usable or d.id in excluded:
                continue  # an offline device is left out of the plan
            v = view.values
            if d.kind is Kind.battery:
                p = self.forecast.device_params(d.id)
                assert isinstance(p, BatteryParams)
                cap = v.get("capacity_kwh") or p.capacity_kwh
                reserve = (d.config.soc_reserve_pct or p.soc_min_pct) / 100 * cap
                soc = v.get("soc_pct", p.initial_soc_pct) / 100 * cap
                lo, hi = d.config.limits.get("power_setpoint_kw", (-1e9, 1e9))
                assets.append(
                    BatteryAsset(
                        id=d.id,
                        capacity_kwh=cap,
                        charge_max_kw=min(v.get("max_charge_kw", p.max_charge_kw), hi),
                        discharge_max_kw=min(v.get("max_discharge_kw", p.max_discharge_kw), -lo),
                        charge_efficiency=p.charge_efficiency,
                        discharge_efficiency=p.discharge_efficiency,
                        soc_min_kwh=min(reserve, soc),
                        soc_max_kwh=p.soc_max_pct / 100 * cap,
                        soc_kwh=min(soc, cap),
                        terminal_value=0.5 * max(series.import_price),
                        # Degradation (about 0.25 CNY per kWh through the battery, each way, for
                        # a C&I lithium-iron system): the battery cycles valley to peak, not flat
                        # to peak, which also keeps the site's load (and any baseline) calm.
                        throughput_cost=self.battery_cycle_cost,
                    )
                )
            elif d.kind is Kind.ev_charger:
                flex = ev_flex.get(d.id)
                if flex is None or v.get("plugged", 0.0) < 0.5:
                    continue
                need, left_h = flex.session_estimate(view, snap.ts)
                if need <= 0:
                    continue
                max_kw = flex.max_kw(view)
                assets.append(
                    EvSession(
                        id=d.id,
                        arrival_step=0,
                        departure_step=max(1, int(left_h / dt_h)),
                        energy_kwh=need,
                        max_kw=max_kw,
                        efficiency=1.0,
                    )
                )
            elif d.kind is Kind.hvac:
                z = self.forecast.device_params(d.id)
                assert isinstance(z, HvacZoneParams)
                band = d.config.comfort
                lo_c, hi_c = (band.min_c, band.max_c) if band else (22.0, 26.0)
                margin = 0.5  # plan inside the band: the loop needs room to correct
                max_kw = min(z.max_power_kw, d.config.limits.get("power_limit_kw", (0, 1e9))[1])
                assets.append(
                    ThermalZoneAsset(
                        id=d.id,
                        r_k_per_kw=z.r_k_per_kw,
                        c_kwh_per_k=z.c_kwh_per_k,
                        cop=z.cop,
                        max_kw=max_kw,
                        temp_c=v.get("zone_temp_c", z.initial_temp_c),
                        comfort_min_c=[lo_c + margin] * grid.steps,
                        comfort_max_c=[hi_c - margin] * grid.steps,
                        internal_gain_kw=series.zone_gain_kw[d.id],
                    )
                )
            elif d.kind is Kind.curtailable_load:
                load = series.load_kw[d.id]
                assets.append(
                    CurtailableLoadAsset(
                        id=d.id,
                        load_kw=load,
                        max_shed_kw=max(load),
                        max_duration_h=self.load_max_shed_h,
                        cost=self.load_shed_cost,
                    )
                )
        return assets

    def problem(
        self,
        snap: Snapshot,
        events: list[Event],
        baseline_kw: dict[datetime, float],
        ev_flex: dict[str, EvFlex],
        excluded: set[str],
    ) -> Problem:
        """The optimiser's input for a plan made now."""
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
                export_limit_kw=max(limits.export_kw, 1e-6),
                demand_charge=tariff.demand_charge_per_kw,
                carbon_kg_per_kwh=series.carbon_kg_per_kwh,
                carbon_price=tariff.carbon_price_per_kg,
            ),
            assets=self._assets(snap, grid, series, ev_flex, excluded),
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
    """Per interval of `event`, the reduction (curtail) or cap the plan expects to meet (kW)."""
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
        else:
            out.append(0.0)
    return out
