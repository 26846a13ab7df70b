"""Synthetic history for baselines: the site meter's import on the days before a replay,
generated from the site's physics parameters instead of replaying those days.

For each minute of the `history_days` before the start, the expected site import without
any DR (kW, consumption positive) is the sum of: the base load (`peak_kw` × shape + seeded
Gaussian noise of `noise_kw`), every sheddable load at its `power_kw`, every HVAC zone at the
steady state that holds its local setpoint (electric power ((T_out − setpoint)/R + internal
+ solar gains)/COP, clamped to 0..max), PV at −rated × irradiance/1000 × derate, and EV
chargers charging each vehicle at its full rate from arrival until it has its energy (the
scenario's random arrivals drawn for those days with seed + 1, or its fixed visits repeated
each day). The battery is idle.

For a strategy that plans, the days are instead what the agent's planner makes of them
(`planned_import`: each day's plan without events, so that the like days show the battery's
cycle, the zones' pre-cooling and coasting and the vehicles' charging where the plan puts
them, as the event day's counterfactual does), plus the same noise. A like-day baseline over
days the site ran otherwise than on the event day measures the difference of operation, not
the event: on the shortened summer afternoon, history with the zones at their local setpoint
put the 10-of-10 baseline 27 % of the request above the counterfactual.

The values are written as the meter's 60-s telemetry (`meter`/`import_power_kw`), which is
what the like-day baseline reads. This is far cheaper than replaying the days and close
enough for a baseline; it is a model, not a measurement.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from building.params import (
    CurtailableLoadParams,
    EvChargerParams,
    HvacZoneParams,
    PvParams,
)
from building.weather import Environment
from devices.profile import Kind
from optimiser import EvSession
from vpp.control.types import DeviceView, Snapshot
from vpp.dr.forecast import TwinForecast
from vpp.dr.planning import STEP as PLAN_STEP
from vpp.dr.planning import SitePlanner
from vpp.kinds import adapter_for
from vpp.kinds.ev_charger import DEFAULT_EV_NEED_KWH, DEFAULT_EV_STAY_H, EvSessionEstimate
from vpp.replay.evdraw import draw_sessions
from vpp.replay.scenario import Scenario
from vpp.site import Device
from vpp.store.store import Store

STEP = timedelta(seconds=60)
METER_POINT = "import_power_kw"


Visit = tuple[str, datetime, datetime, float, float]
"""(charger id, arrival, departure, kWh, max kW) of one vehicle."""


def _ev_visits(scenario: Scenario, start: datetime, days: int) -> list[Visit]:
    """The history days' vehicles, all chargers."""
    site = scenario.site
    limits = {
        d.id: EvChargerParams.model_validate({**(d.config.sim or {}), "sessions": []}).max_power_kw
        for d in site.by_kind(Kind.ev_charger)
    }
    arrivals = scenario.config.ev_arrivals
    out: list[Visit] = []
    taken: dict[str, list[tuple[datetime, datetime]]] = {c: [] for c in limits}
    for group in arrivals.draws(scenario.seed) if arrivals is not None else []:
        spec = group.model_copy(update={"seed": (group.seed or 0) + 1})
        for cid, a, b, kwh, vmax in draw_sessions(
            spec, list(limits), start, timedelta(days=days), scenario.tz, taken
        ):
            taken[cid].append((a, b))
            out.append((cid, a, b, kwh, min(vmax, limits[cid])))
    first_day_end = scenario.start + timedelta(days=1)
    fixed = [
        s
        for s in scenario.sessions()
        if s.arrival < first_day_end
        and (arrivals is None or not arrivals.draws(0) or s.charger in arrivals.explicit)
    ]
    for k in range(1, days + 1):
        for s in fixed:
            shift = timedelta(days=k)
            out.append(
                (
                    s.charger,
                    s.arrival - shift,
                    s.departure - shift,
                    s.energy_needed_kwh,
                    min(s.vehicle_max_kw, limits.get(s.charger, s.vehicle_max_kw)),
                )
            )
    return out


def _ev_kw_by_minute(visits: list[Visit], t0: datetime, minutes: int) -> list[float]:
    """EV charging power (kW) at the middle of each minute from `t0`: every vehicle charges
    at its full rate from arrival until it has its energy or leaves. Exact integer
    microseconds, and each minute sums its vehicles in the order given, as a per-minute
    loop over `visits` would."""
    us = timedelta(microseconds=1)
    step_us = STEP // us
    half_us = step_us // 2
    totals = [0.0] * minutes
    for _, a, b, kwh, kw in visits:
        full = a + timedelta(hours=kwh / kw) if kw > 0 else a
        a_us = (a - t0) // us
        end_us = (min(b, full) - t0) // us
        # Minute k is charging when a_us <= k * step_us + half_us < end_us.
        k_lo = max(0, -((half_us - a_us) // step_us))
        k_hi = min(minutes, -((half_us - end_us) // step_us))
        for k in range(k_lo, k_hi):
            totals[k] += kw
    return totals


def expected_import(scenario: Scenario, env: Environment) -> Callable[[datetime], float]:
    """The site's expected import at a time, without noise, EVs or the battery (kW)."""
    site = scenario.site
    loads = [
        CurtailableLoadParams.model_validate(d.config.sim or {})
        for d in site.by_kind(Kind.curtailable_load)
    ]
    zones = [HvacZoneParams.model_validate(d.config.sim or {}) for d in site.by_kind(Kind.hvac)]
    pvs = [PvParams.model_validate(d.config.sim or {}) for d in site.by_kind(Kind.pv)]
    base = scenario.base_load()

    def at(t: datetime) -> float:
        irr = env.irradiance_w_m2(t)
        out_c = env.outdoor_temp_c(t)
        kw = base.peak_kw * env.shape(base.shape, t)
        kw += sum(env.shape(p.power_kw, t) for p in loads)
        for z in zones:
            gains = env.shape(z.internal_gains_kw, t) + z.solar_gain_factor * irr / 1000
            need = ((out_c - z.local_setpoint_c) / z.r_k_per_kw + gains) / z.cop
            kw += min(max(need, 0.0), z.max_power_kw)
        kw -= sum(p.rated_kw * irr / 1000 * p.derate for p in pvs)
        return kw

    return at


def planned_import(
    scenario: Scenario,
    start: datetime,
    days: int,
    visits: list[Visit],
) -> list[float]:
    """The site's import as the agent operates it on each of `days` days from `start`: per
    15 min, the plan made at the day's start without events (battery, HVAC pre-cooling and
    coasting, sheddable loads and the day's `visits` of vehicles as the optimiser moves
    them), from the site file's initial states, as the run itself starts.

    Each vehicle is planned as the agent sees one (`_as_seen`: the charger's EV defaults,
    not its own need) and draws what the agent's charger adapter gives it following that
    plan (`Flex.followed_kw`: at least its floor from arrival), and once the agent counts
    it charged, what it still takes at its full rate, until it has its own energy or
    leaves. A day planned with the vehicles' true needs and no floor put every car in
    the first cheap hour: like days 18-22 kW under the counterfactual before it and 20-35 kW
    over it in it (issue 12, seed 4)."""
    site = scenario.replay_site()
    env = scenario.environment()

    def prices(times: list[datetime]) -> tuple[list[float], list[float], list[float]]:
        return scenario.import_prices(times), scenario.export_prices(times), scenario.carbon(times)

    forecast = TwinForecast(site, env, scenario.base_load(), site.config.tariff, prices=prices)
    steps = int(timedelta(days=1) / PLAN_STEP)
    planner = SitePlanner(site, forecast, steps=steps)
    views = {d.id: DeviceView(d.id, True, {}) for d in site.devices}
    chargers = {d.id: d for d in site.by_kind(Kind.ev_charger)}
    dt_h = PLAN_STEP / timedelta(hours=1)
    out: list[float] = []
    for k in range(days):
        t0 = (start + timedelta(days=k)).astimezone(UTC)
        problem = planner.problem(Snapshot(t0, 0.0, None, views), [], {}, {}, set())
        day = [v for v in visits if t0 <= v[1] < t0 + timedelta(days=1)]
        seen = [_as_seen(chargers[v[0]], v, t0, i) for i, v in enumerate(day)]
        problem = problem.model_copy(update={"assets": [*problem.assets, *(c for c, _ in seen)]})
        sched = planner.plan(problem, t0).schedule
        kw = list(sched.site_import_kw)
        for (car, estimate), (cid, _, b, need_kwh, _) in zip(seen, day, strict=True):
            planned = sched.power_kw.get(car.id, [0.0] * steps)[car.arrival_step :]
            adapter = adapter_for(chargers[cid])
            drawn = adapter.followed_kw(planned, dt_h, estimate) if adapter else planned
            left, leave = need_kwh, (b - t0) // PLAN_STEP - car.arrival_step
            counted = estimate.need_kwh  # what the agent still counts the car to need
            for j, (p, d) in enumerate(zip(planned, drawn, strict=True)):
                # Counted charged, the car is no longer planned and its charger not limited
                # (`EvFlex.follow_plan` without a planned step): it takes what it wants.
                may = d if counted > 1e-9 else car.max_kw
                got = min(may, left / dt_h) if j < leave else 0.0  # full, or gone
                left, counted = left - got * dt_h, counted - got * dt_h
                kw[car.arrival_step + j] += got - p
        out += kw
    return out


def _as_seen(
    charger: Device, visit: Visit, t0: datetime, i: int
) -> tuple[EvSession, EvSessionEstimate]:
    """A vehicle as the agent plans it from its arrival: the charger's EV defaults (energy
    needed, stay), as `EvFlex.session_estimate` takes them, at the vehicle's rate."""
    _, a, _, _, kw = visit
    ev = charger.config.ev
    need = ev.energy_needed_kwh if ev else DEFAULT_EV_NEED_KWH
    stay_h = ev.departure_after_h if ev else DEFAULT_EV_STAY_H
    arrival = (a - t0) // PLAN_STEP
    car = EvSession(
        id=f"car{i}",
        arrival_step=arrival,
        departure_step=arrival + max(1, int(stay_h / (PLAN_STEP / timedelta(hours=1)))),
        energy_kwh=need,
        max_kw=kw,
        efficiency=1.0,
    )
    return car, EvSessionEstimate(need, stay_h, kw)


def generate_history(
    store: Store, scenario: Scenario, days: int | None = None, *, planned: bool = False
) -> int:
    """Write `days` (default: the scenario's `history_days`) of synthetic meter telemetry
    ending at the scenario start into `store`; returns the number of minutes written.

    `planned`: the days as the agent's planner operates the site (`planned_import`, for a
    strategy that plans), else as its devices run on their own (`expected_import`)."""
    n_days = scenario.config.history_days if days is None else days
    if n_days <= 0:
        return 0
    env = scenario.environment()
    start = scenario.start - timedelta(days=n_days)
    model = expected_import(scenario, env)
    visits = _ev_visits(scenario, start, n_days)
    noise = scenario.base_load().noise_kw
    rng = random.Random(scenario.seed + 1)
    t0 = start.astimezone(UTC)  # local midnight `n_days` before the start, stepped in UTC
    minutes = int((scenario.start.astimezone(UTC) - t0) / STEP)
    plan = planned_import(scenario, start, n_days, visits) if planned else None
    # Planned days hold their vehicles; the others charge each at full rate from arrival.
    ev_kw = [0.0] * minutes if planned else _ev_kw_by_minute(visits, t0, minutes)
    per_step = PLAN_STEP // STEP
    with store.batch():
        for k in range(minutes):
            t = t0 + k * STEP
            mid = t + STEP / 2
            kw = (model(mid) if plan is None else plan[k // per_step]) + ev_kw[k]
            if noise > 0:
                kw += rng.gauss(0.0, noise)
            store.add_telemetry(t, "meter", {METER_POINT: kw})
        store.flush()
    return minutes
