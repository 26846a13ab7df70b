"""An independent computation of the summary's figures from a store, by plain SQL and
arithmetic (no vpp.measure, no vpp.replay.readings), for tests of replays: compare with
`summary.json` within rounding.

Measured against a counterfactual store (the same scenario run without events), the way the
summary does when it is given one. Power kW, consumption positive.
"""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vpp.grid.messages import Event
from vpp.replay.scenario import Scenario
from vpp.store.store import Store


def _rows(
    store: Store | Path, device: str, point: str, a: float, b: float
) -> list[tuple[float, float]]:
    sql = (
        "SELECT ts, mean FROM telemetry WHERE device_id=? AND point=? AND ts>=? AND ts<?"
        " ORDER BY ts"
    )
    if isinstance(store, Store):
        return [(float(t), float(v)) for t, v in store.rows(sql, (device, point, a, b))]
    with sqlite3.connect(store) as db:
        return [(float(t), float(v)) for t, v in db.execute(sql, (device, point, a, b))]


def _max(store: Store | Path, device: str, point: str, a: float, b: float) -> float | None:
    sql = "SELECT MAX(max) FROM telemetry WHERE device_id=? AND point=? AND ts>=? AND ts<?"
    if isinstance(store, Store):
        (row,) = list(store.rows(sql, (device, point, a, b)))
    else:
        with sqlite3.connect(store) as db:
            row = db.execute(sql, (device, point, a, b)).fetchone()
    return None if row[0] is None else float(row[0])


def meter(store: Store | Path, sc: Scenario) -> dict[float, float]:
    """The meter's window means over the run, by window start (unix s)."""
    a, b = sc.start.timestamp(), sc.end.timestamp()
    return dict(_rows(store, "meter", "import_power_kw", a, b))


def _mean_over(series: dict[float, float], a: float, b: float) -> float | None:
    vals = [v for t, v in series.items() if a <= t < b]
    return math.fsum(vals) / len(vals) if vals else None


def run_figures(store: Store | Path, sc: Scenario) -> dict[str, float]:
    """energy_cost, emissions_kgco2, import_kwh, peak_import_kw (15-min clock intervals)."""
    res = sc.site.config.store.telemetry_resolution_s
    m = meter(store, sc)
    times = [datetime.fromtimestamp(t, UTC) for t in m]
    imp, exp, co2 = sc.import_prices(times), sc.export_prices(times), sc.carbon(times)
    h = res / 3600
    cost = emissions = imported = 0.0
    quarters: dict[int, list[float]] = defaultdict(list)
    for i, (t, kw) in enumerate(m.items()):
        if kw >= 0:
            cost += kw * h * imp[i]
            emissions += kw * h * co2[i]
            imported += kw * h
        else:
            cost += kw * h * exp[i]
        quarters[int(t // 900)].append(kw)
    full = [math.fsum(v) / len(v) for v in quarters.values() if len(v) * res >= 0.9 * 900]
    return {
        "energy_cost": cost,
        "emissions_kgco2": emissions,
        "import_kwh": imported,
        "peak_import_kw": max(full),
    }


def event_figures(
    store: Store | Path, counterfactual: Store | Path, sc: Scenario, event: Event
) -> dict[str, Any]:
    """requested_kw, delivered_kw, delivered_ratio, min_interval_ratio against the
    counterfactual import (curtail_kw and import_cap_kw)."""
    run, cf = meter(store, sc), meter(counterfactual, sc)
    req_e = del_e = hours = 0.0
    req_sum = del_sum = 0.0
    ratios = []
    for iv in event.intervals:
        a, b = iv.start.timestamp(), iv.end.timestamp()
        base, actual = _mean_over(cf, a, b), _mean_over(run, a, b)
        assert base is not None and actual is not None
        h = (b - a) / 3600
        req = iv.value if event.signal == "curtail_kw" else max(0.0, base - iv.value)
        delivered = base - actual
        hours += h
        req_sum += req * h
        del_sum += delivered * h
        if req > 1e-3:
            req_e += req * h
            del_e += delivered * h
            ratios.append(delivered / req)
        elif event.signal == "import_cap_kw":
            ratios.append(1.0 if actual <= iv.value else 0.0)
    return {
        "requested_kw": req_sum / hours,
        "delivered_kw": del_sum / hours,
        "delivered_ratio": del_e / req_e if req_e > 0 else None,
        "min_interval_ratio": min(ratios) if ratios else None,
    }


def unmet_ev_kwh(store: Store | Path, sc: Scenario, charger_kw: float = 22.0) -> float:
    """Need minus the highest session energy reported from arrival to a minute after
    departure; for a vehicle still plugged in at the end, less also what it could still take
    at `charger_kw` (or its own limit, the lower) until it leaves."""
    total = 0.0
    for s in sc.sessions():
        if s.arrival >= sc.end or s.departure <= sc.start:
            continue
        later = [
            o.arrival for o in sc.sessions() if o.charger == s.charger and o.arrival > s.arrival
        ]
        b = (s.departure + timedelta(minutes=1)).timestamp()
        if later:
            b = min(b, min(later).timestamp())
        got = _max(store, s.charger, "session_energy_kwh", s.arrival.timestamp(), b) or 0.0
        left_h = max(0.0, (s.departure - sc.end).total_seconds() / 3600)
        total += max(0.0, s.energy_needed_kwh - got - min(charger_kw, s.vehicle_max_kw) * left_h)
    return total


def comfort_degc_h(store: Store | Path, sc: Scenario, a: datetime, b: datetime) -> float:
    """Degree-hours outside each zone's band, window by window (rectangles, so only close
    to the summary's linear integral: compare with a tolerance)."""
    total = 0.0
    res = sc.site.config.store.telemetry_resolution_s
    for d in sc.site.devices:
        if d.config.comfort is None:
            continue
        lo, hi = d.config.comfort.min_c, d.config.comfort.max_c
        for _, temp in _rows(store, d.id, "zone_temp_c", a.timestamp(), b.timestamp()):
            total += max(0.0, temp - hi, lo - temp) * res / 3600
    return total
