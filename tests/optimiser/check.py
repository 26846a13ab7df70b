"""Independent checks of a Schedule against a Problem: every asset constraint re-integrated
from the returned powers with the equations of domain.md §6, not read back from the model."""

from __future__ import annotations

import math

from optimiser import (
    BatteryAsset,
    CurtailableLoadAsset,
    EvSession,
    Problem,
    Schedule,
    ThermalZoneAsset,
)

TOL = 1e-6


def _le(a: float, b: float, what: str, tol: float = TOL) -> None:
    assert a <= b + tol * max(1.0, abs(b)), f"{what}: {a} > {b}"


def _eq(a: float, b: float, what: str, tol: float = TOL) -> None:
    assert abs(a - b) <= tol * max(1.0, abs(a), abs(b)), f"{what}: {a} != {b}"


def check_schedule(problem: Problem, s: Schedule) -> None:
    """Assert that `s` satisfies every asset and site constraint of `problem` to 1e-6."""
    n, dt = problem.grid.steps, problem.grid.dt_h
    site = problem.site
    total = [site.base_load_kw[t] - site.pv_kw[t] + s.pv_curtailed_kw[t] for t in range(n)]
    for t in range(n):
        _le(-TOL, s.pv_curtailed_kw[t], "pv curtailment ≥ 0")
        _le(s.pv_curtailed_kw[t], site.pv_kw[t], "pv curtailment ≤ pv")
    for a in problem.assets:
        p = s.power_kw[a.id]
        assert len(p) == n
        for t in range(n):
            total[t] += p[t]
        if isinstance(a, BatteryAsset):
            _check_battery(a, p, s, dt)
        elif isinstance(a, EvSession):
            _check_ev(a, p, s, dt, n)
        elif isinstance(a, ThermalZoneAsset):
            _check_zone(a, p, s, dt, site.outdoor_temp_c)
        elif isinstance(a, CurtailableLoadAsset):
            shed = [a.load_kw[t] - p[t] for t in range(n)]
            for t in range(n):
                _le(-TOL, shed[t], f"{a.id} shed ≥ 0")
                _le(shed[t], min(a.max_shed_kw, a.load_kw[t]), f"{a.id} shed ≤ max")
            # At most max_duration_h of full shed in any window of max_duration_h + min_rest_h.
            width = max(1, math.ceil((a.max_duration_h + a.min_rest_h) / dt - 1e-9))
            for k in range(max(1, n - width + 1)):
                used = a.max_shed_kw * a.shed_h if k == 0 else 0.0
                budget = max(0.0, a.max_shed_kw * a.max_duration_h - used)
                _le(sum(shed[k : k + width]) * dt, budget, f"{a.id} shed window {k}")
    over = s.slacks.get("site.import_over_limit_kwh", 0.0)
    over_seen = 0.0
    for t in range(n):
        _eq(s.site_import_kw[t], total[t], f"site balance step {t}", 1e-6)
        _le(-site.export_limit_kw, s.site_import_kw[t], f"export limit step {t}")
        over_seen += max(0.0, s.site_import_kw[t] - site.import_limit_kw) * dt
    _le(over_seen, over, "import beyond the limit is reported", 1e-5)


def _check_battery(a: BatteryAsset, p: list[float], s: Schedule, dt: float) -> None:
    soc = s.soc_kwh[a.id]
    e = a.soc_kwh
    hi_set = a.capacity_kwh if a.soc_max_kwh is None else a.soc_max_kwh
    for t, pt in enumerate(p):
        c, d = max(pt, 0.0), max(-pt, 0.0)
        _le(c, a.charge_max_kw, f"{a.id} charge limit")
        _le(d, a.discharge_max_kw, f"{a.id} discharge limit")
        e = e + dt * (a.charge_efficiency * c - d / a.discharge_efficiency)
        _eq(soc[t], e, f"{a.id} SoC re-integrated step {t}", 1e-6)
        _le(-TOL, e, f"{a.id} SoC ≥ 0")
        _le(e, a.capacity_kwh, f"{a.id} SoC ≤ capacity")
        if a.soc_min_kwh <= a.soc_kwh <= hi_set:
            _le(a.soc_min_kwh, e, f"{a.id} SoC ≥ min")
            _le(e, hi_set, f"{a.id} SoC ≤ max")
    if a.final_soc_kwh is not None:
        short = max(0.0, a.final_soc_kwh - e)
        _eq(s.slacks.get(f"{a.id}.final_soc_kwh", 0.0), short, f"{a.id} final slack", 1e-5)


def _check_ev(a: EvSession, p: list[float], s: Schedule, dt: float, n: int) -> None:
    delivered = 0.0
    for t, pt in enumerate(p):
        _le(-TOL, pt, f"{a.id} power ≥ 0")
        limit = a.max_kw if a.arrival_step <= t < a.departure_step else 0.0
        _le(pt, limit, f"{a.id} power within plug window step {t}")
        delivered += a.efficiency * pt * dt
    _eq(s.soc_kwh[a.id][-1], delivered, f"{a.id} delivered")
    later = max(0, a.departure_step - max(n, a.arrival_step)) * dt * a.max_kw * a.efficiency
    need = max(0.0, a.energy_kwh - later)
    unmet = s.slacks.get(f"{a.id}.unmet_kwh", 0.0)
    _le(need, delivered + unmet, f"{a.id} energy by departure (with reported slack)", 1e-5)
    # The slack is not padded: it is exactly what is missing.
    _eq(unmet, max(0.0, need - delivered), f"{a.id} unmet reported", 1e-5)


def _check_zone(
    a: ThermalZoneAsset, p: list[float], s: Schedule, dt: float, out: list[float]
) -> None:
    r, c = a.r_k_per_kw, a.c_kwh_per_k
    av = math.exp(-dt / (r * c))
    sign = -1.0 if a.mode == "cooling" else 1.0
    temp = a.temp_c
    viol = 0.0
    for t, pt in enumerate(p):
        _le(-TOL, pt, f"{a.id} power ≥ 0")
        _le(pt, a.max_kw, f"{a.id} power ≤ max")
        q = a.internal_gain_kw[t] + (a.solar_gain_kw[t] if a.solar_gain_kw else 0.0)
        temp = av * temp + (1 - av) * (out[t] + r * (q + sign * a.cop * pt))
        _eq(s.temperature_c[a.id][t], temp, f"{a.id} temperature re-integrated step {t}", 1e-6)
        viol += (max(0.0, temp - a.comfort_max_c[t]) + max(0.0, a.comfort_min_c[t] - temp)) * dt
    _eq(s.slacks.get(f"{a.id}.comfort_degc_h", 0.0), viol, f"{a.id} comfort slack", 1e-5)
