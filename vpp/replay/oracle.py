"""The perfect-foresight oracle: what any controller could have done on a replayed day.

It solves the replay's run with full knowledge (the simulator's own building model: base
load, weather, PV, zone RC and gains, load draws; every vehicle's arrival, departure and need;
the battery's loss where a fault takes it offline) with the optimiser package (Pyomo + HiGHS),
within comfort (each zone's true band, no planning margin), EV needs, device limits (the
battery's reserve and ratings, chargers' ratings), the loads' shedding rules (`max_shed_min`,
`min_rest_min`; `dr_only` loads shed only for the event asked) and the site's import limit.

`min_import_kw(start, end)` is the least mean import (kW) the site can draw over one
interval (whole 15-min steps): the interval alone, everything before it spent for it. Against
a baseline it is the largest deliverable reduction of that interval, an upper bound no
replay can beat (issue 12: a replay delivering more than it, beyond 2 % of the request,
means the oracle is wrong).
`full_request(caps)` says whether every interval of one event can hold its cap at once, and
`event_fraction(asks)` the largest share of every interval's request they can all hold.

Sheddable loads are all or nothing, as the devices are (`shed` on or off: the simulator
draws `shed_power_kw`, 0 kW, while shed): a binary per load and 15-min step, solved as a MIP
after the LP (`Planner.plan(on_off=...)`, HiGHS, `MIP_ABS_GAP` and `TIME_LIMIT_S` per solve).
The LP would shed a fraction of a load in a step, which no controller of an on/off load can
hold (generated seed 9: 0.863 claimed where no schedule beats 0.817). A MIP stopped short of
its optimum gives no bound of its own here (HiGHS's dual bound is of the whole objective,
not of one step's import), so the LP relaxation answers instead (an upper bound still) and
`relaxed` records it. The binaries switch on 15-min boundaries: a controller switching
within a step is not modelled.

Per-step inputs are means over the step (sampled each minute), not the value at its middle:
PV and gains are curved, and the honest bound needs their mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta

from optimiser import (
    BatteryAsset,
    CurtailableLoadAsset,
    DrEvent,
    EvSession,
    Penalties,
    Planner,
    Problem,
    Schedule,
    SiteForecast,
    SolverOptions,
    ThermalZoneAsset,
    TimeGrid,
)
from optimiser.inputs import Asset
from vpp.control.types import DeviceView
from vpp.dr.forecast import SiteSeries, TwinForecast
from vpp.dr.planning import STEP, floor_step
from vpp.kinds import plugin_for
from vpp.kinds.base import AssetCosts, PlanContext
from vpp.kinds.zone import PLAN_MARGIN_C
from vpp.replay.scenario import Scenario
from vpp.site import Site

SAMPLES_PER_STEP = 15
DEFAULT_WATCHDOG_S = 180.0
# Comfort and EV needs far above any delivery: the oracle never buys a kW with them.
PENALTIES = Penalties(
    comfort_per_degc_h=1e6,
    ev_unmet_per_kwh=1e6,
    import_over_limit_per_kwh=1e6,
    dr_shortfall_per_kwh=1e3,
)
TIME_LIMIT_S = 60.0
"""Per solve (LP, then the MIP of the all-or-nothing loads)."""
MIP_ABS_GAP = 1.0
"""HiGHS's MIP gap, absolute (currency; no relative gap): the objective is dominated by the
shortfall penalty (1e3 a kWh), so the answer is within 0.004 kW of a step's least import,
far below `FEASIBLE_TOL_KW`, whatever the day's other costs."""
FEASIBLE_TOL_KW = 0.5
"""A cap counts as held when the oracle's import exceeds it by at most this (kW, LP noise)."""


FRACTION_TOL = 0.005
"""How closely `event_fraction` is bisected."""


class OracleError(RuntimeError):
    """The oracle's solve did not reach an optimum (its answer would not be a bound)."""


def _mean_series(forecast: TwinForecast, start: datetime, steps: int) -> SiteSeries:
    """The forecast's per-step means over `SAMPLES_PER_STEP` points of each step."""
    runs = []
    for j in range(SAMPLES_PER_STEP):
        offset = STEP * ((j + 0.5) / SAMPLES_PER_STEP - 0.5)
        runs.append(forecast.series(TimeGrid(start=start + offset, step=STEP, steps=steps)))

    def mean(get: str) -> list[float]:
        cols = [getattr(r, get) for r in runs]
        return [math.fsum(c[k] for c in cols) / len(cols) for k in range(steps)]

    devices = {
        d: [math.fsum(r.device_series[d][k] for r in runs) / len(runs) for k in range(steps)]
        for d in runs[0].device_series
    }
    return SiteSeries(
        base_load_kw=mean("base_load_kw"),
        pv_kw=mean("pv_kw"),
        outdoor_temp_c=mean("outdoor_temp_c"),
        import_price=mean("import_price"),
        export_price=mean("export_price"),
        carbon_kg_per_kwh=mean("carbon_kg_per_kwh"),
        device_series=devices,
    )


class Oracle:
    """The oracle of one scenario's run (see the module docstring); `solver` replaces its
    HiGHS settings (`TIME_LIMIT_S`, `MIP_ABS_GAP`)."""

    def __init__(self, scenario: Scenario, solver: SolverOptions | None = None) -> None:
        sc = self.scenario = scenario
        self.solver = solver or SolverOptions(
            time_limit_s=TIME_LIMIT_S, mip_rel_gap=0.0, highs={"mip_abs_gap": MIP_ABS_GAP}
        )
        self.site: Site = sc.replay_site()
        start = floor_step(sc.start)
        steps = math.ceil((sc.end - start) / STEP)
        self.grid = TimeGrid(start=start, step=STEP, steps=steps)

        def prices(times: list[datetime]) -> tuple[list[float], list[float], list[float]]:
            return sc.import_prices(times), sc.export_prices(times), sc.carbon(times)

        forecast = TwinForecast(self.site, sc.environment(), sc.base_load(), prices=prices)
        self.series = _mean_series(forecast, start, steps)
        self.planned_assets: list[Asset] = []
        self.assets = self._assets(forecast)
        self.planner = Planner()
        self.on_off = frozenset(a.id for a in self.assets if isinstance(a, CurtailableLoadAsset))
        self.relaxed: list[str] = []
        """One line per solve whose MIP stopped short of its optimum (the LP answered)."""
        self._cache: dict[tuple[datetime, datetime], float] = {}

    def _assets(self, forecast: TwinForecast) -> list[Asset]:
        grid, series = self.grid, self.series
        ctx = PlanContext(
            ts=grid.start,
            grid=grid,
            import_price=series.import_price,
            device_series=series.device_series,
            costs=AssetCosts(battery_cycle_cost=0.0, load_shed_cost=0.0),
        )
        lost = self._lost_steps()
        assets: list[Asset] = []
        for d in self.site.devices:
            view = DeviceView(d.id, True, {})
            made = plugin_for(d.kind).assets(d, view, forecast.device_params(d.id), ctx, None)
            for a in made:
                self.planned_assets.append(a)
                if isinstance(a, ThermalZoneAsset):
                    # The true band: the planner's margin is the closed loop's room, not a
                    # limit of the building.
                    a = a.model_copy(
                        update={
                            "comfort_min_c": [v - PLAN_MARGIN_C for v in a.comfort_min_c],
                            "comfort_max_c": [v + PLAN_MARGIN_C for v in a.comfort_max_c],
                        }
                    )
                elif isinstance(a, BatteryAsset) and d.id in lost:
                    a = a.model_copy(update={"available_steps": lost[d.id]})
                assets.append(a)
        vehicles = self._vehicles()
        self.planned_assets += vehicles
        return assets + vehicles

    def _lost_steps(self) -> dict[str, int]:
        """Devices offline (or deaf to commands) from some instant to the end of the run:
        the step from which they can do nothing (their watchdog's time after the fault's
        start, rounded up: the device may hold its last setpoint until then)."""
        sc = self.scenario
        out: dict[str, int] = {}
        for f in sc.fault_windows():
            if not (f.faults.offline or f.faults.ignore_commands) or f.end < sc.end:
                continue
            sim = self.site.device(f.device).config.sim or {}
            wd = timedelta(seconds=float(sim.get("default_watchdog_s", DEFAULT_WATCHDOG_S)))
            k = math.ceil((f.start + wd - self.grid.start) / STEP)
            out[f.device] = min(out.get(f.device, k), k)
        return out

    def _vehicles(self) -> list[Asset]:
        """Every visit of the run as the oracle knows it: plugged from the step of its
        arrival to the end of the step of its departure, at the charger's rating or the
        car's, whichever is lower, needing what the scenario says."""
        out: list[Asset] = []
        for i, s in enumerate(self.scenario.sessions()):
            d = self.site.device(s.charger)
            rating = plugin_for(d.kind).rating_kw(d)
            max_kw = min(s.vehicle_max_kw, rating if rating is not None else s.vehicle_max_kw)
            arrival = max(0, self.grid.step_of(s.arrival))
            departure = max(arrival, math.ceil((s.departure - self.grid.start) / STEP))
            out.append(
                EvSession(
                    id=f"{s.charger}#{i}",
                    arrival_step=arrival,
                    departure_step=departure,
                    energy_kwh=s.energy_needed_kwh,
                    max_kw=max_kw,
                    efficiency=1.0,
                )
            )
        return out

    def _problem(self, caps: Mapping[datetime, float], assets: list[Asset]) -> Problem:
        s = self.series
        limits = self.site.config.limits
        events = [
            DrEvent(kind="import_cap_kw", start=t, end=t + STEP, value=max(0.0, v))
            for t, v in sorted(caps.items())
        ]
        return Problem(
            grid=self.grid,
            site=SiteForecast(
                base_load_kw=s.base_load_kw,
                pv_kw=s.pv_kw,
                outdoor_temp_c=s.outdoor_temp_c,
                import_price=s.import_price,
                export_price=s.export_price,
                import_limit_kw=limits.import_kw,
                export_limit_kw=max(limits.export_kw, 1e-6),
            ),
            assets=assets,
            events=events,
            penalties=PENALTIES,
            solver=self.solver,
        )

    def _solve(self, caps: Mapping[datetime, float], assets: list[Asset] | None = None) -> Schedule:
        problem = self._problem(caps, self.assets if assets is None else assets)
        schedule = self.planner.plan(problem, on_off=self.on_off)
        if schedule.fallback:
            raise OracleError(f"the oracle's solve failed: {schedule.reason}")
        if schedule.status.startswith("relaxed"):
            self.relaxed.append(schedule.status)
        return schedule

    def min_import_kw(self, start: datetime, end: datetime) -> float:
        """The least mean import (kW) over `[start, end)` (widened to whole 15-min steps),
        everything before it spent for it."""
        steps_at = self._steps(start, end)
        key = (steps_at[0], steps_at[-1] + STEP)
        if key not in self._cache:
            steps = [self.grid.step_of(t) for t in steps_at]
            if steps[0] < 0 or steps[-1] >= self.grid.steps:
                raise ValueError(f"{start.isoformat()}: outside the run")
            caps = {self.grid.start + STEP * k: 0.0 for k in steps}
            imports = self._solve(caps).site_import_kw
            self._cache[key] = math.fsum(imports[k] for k in steps) / len(steps)
        return self._cache[key]

    def event_fraction(self, asks: list[tuple[datetime, datetime, float, float]]) -> float:
        """The largest share f (0-1, to `FRACTION_TOL`) of every interval's request that can
        be held in all of them at once: `asks` are `(start, end, baseline kW, request kW)`,
        each held when import ≤ baseline − f·request."""

        def holds(f: float) -> bool:
            return self.full_request([(a, b, base - f * req) for a, b, base, req in asks])

        if not asks or holds(1.0):
            return 1.0
        lo, hi = 0.0, 1.0
        while hi - lo > FRACTION_TOL:
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if holds(mid) else (lo, mid)
        return lo

    def planned_import_kw(self) -> list[float]:
        """The import per step (kW) of the day planned for the tariff alone, no event, within
        the bands as the agent plans them (its margin inside each): an estimate of the
        optimiser's counterfactual (e.g. to judge a generator's depths without a replay)."""
        return self._solve({}, self.planned_assets).site_import_kw

    def _steps(self, start: datetime, end: datetime) -> list[datetime]:
        a = floor_step(start)
        return [a + STEP * i for i in range(math.ceil((end - a) / STEP))]

    def full_request(self, caps: list[tuple[datetime, datetime, float]]) -> bool:
        """Whether every interval `(start, end, cap kW of import)` can hold its cap in each
        of its steps, all at once."""
        per_step = {t: v for a, b, v in caps for t in self._steps(a, b)}
        if not per_step:
            return True
        imports = self._solve(per_step).site_import_kw
        return all(
            imports[self.grid.step_of(t)] <= v + FEASIBLE_TOL_KW for t, v in per_step.items()
        )
