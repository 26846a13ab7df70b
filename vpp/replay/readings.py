"""Series read back from a run's store for the summary and the plots.

Telemetry rows are window means (the site file's `store.telemetry_resolution_s`, 60 s by
default) stamped at the window start.
A power series is a step series holding each mean over its own window; a zone temperature is
placed at the middle of its window (it is interpolated linearly there). Power in kW,
consumption positive (the meter's `import_power_kw` is negative when the site exports).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

from devices.profile import Kind
from vpp.kinds import plugin_for
from vpp.measure import StepSeries, ZoneComfortInput
from vpp.measure.ev import session_energy_kwh
from vpp.replay.scenario import EvSession, Scenario
from vpp.site import ComfortBand
from vpp.store.store import Store

METER = ("meter", "import_power_kw")


def open_store(store: Store | str | Path) -> Store:
    """A Store for an existing database file (or the Store given)."""
    if isinstance(store, Store):
        return store
    if str(store) != ":memory:" and not Path(store).is_file():
        raise FileNotFoundError(f"{store}: no such store")
    return Store(store)


def resolution(scenario: Scenario) -> timedelta:
    """The telemetry window length: the site file's `store.telemetry_resolution_s`."""
    return timedelta(seconds=scenario.site.config.store.telemetry_resolution_s)


def points(
    store: Store, device_id: str, point: str, start: datetime, end: datetime
) -> list[tuple[datetime, float]]:
    """Window means of one point with window start in `[start, end)`, oldest first (UTC)."""
    return store.telemetry(device_id, point, start, end)


def gapped(
    samples: list[tuple[datetime, float]], max_gap: timedelta
) -> list[tuple[datetime, float]]:
    """`samples` with a NaN between two that lie more than `max_gap` apart, so that a plotted
    line breaks where the device was offline instead of drawing a straight line across."""
    out: list[tuple[datetime, float]] = []
    for t, v in samples:
        if out and t - out[-1][0] > max_gap:
            out.append((out[-1][0] + (t - out[-1][0]) / 2, math.nan))
        out.append((t, v))
    return out


def meter_id(scenario: Scenario) -> str:
    """The id of the site meter (the first meter of the site file)."""
    meters = scenario.site.by_kind(Kind.meter)
    return meters[0].id if meters else METER[0]


def site_import(
    store: Store, scenario: Scenario, start: datetime, end: datetime
) -> list[tuple[datetime, float]]:
    """The site meter's import (kW) in `[start, end)`."""
    return points(store, meter_id(scenario), METER[1], start, end)


def step_series(samples: list[tuple[datetime, float]], step: timedelta, name: str) -> StepSeries:
    """Window means as a step series: each holds for its own window, gaps stay gaps."""
    return StepSeries(samples, max_hold=step, name=name)


def zone_inputs(
    store: Store, scenario: Scenario, start: datetime, end: datetime, step: timedelta
) -> list[ZoneComfortInput]:
    """Each HVAC zone's temperatures (window middles) and comfort band (degC)."""
    out = []
    for d in scenario.site.by_kind(Kind.hvac):
        band = d.config.comfort or ComfortBand()
        temps = [(t + step / 2, v) for t, v in points(store, d.id, "zone_temp_c", start, end)]
        out.append(ZoneComfortInput(d.id, temps, band.min_c, band.max_c))
    return out


def delivered_kwh(
    store: Store, session: EvSession, next_arrival: datetime | None, step: timedelta
) -> float:
    """Energy a vehicle received by its departure (kWh): the increases of the charger's
    `session_energy_kwh` counter from its value before the arrival until one window after the
    departure (or the next vehicle's arrival on that charger), a drop counting as a reset
    (vpp.measure.ev). So a counter that keeps counting across cars credits each car only
    its own energy. 0 when the charger reported nothing then."""
    a = session.arrival.timestamp()
    b = (session.departure + step).timestamp()
    if next_arrival is not None:
        b = min(b, next_arrival.timestamp())
    w = step.total_seconds()
    before = list(
        store.rows(
            "SELECT max FROM telemetry WHERE device_id=? AND point='session_energy_kwh'"
            " AND ts<=? ORDER BY ts DESC LIMIT 1",
            (session.charger, a - w),
        )
    )
    windows = [
        (float(lo), float(hi))
        for lo, hi in store.rows(
            "SELECT min, max FROM telemetry WHERE device_id=? AND point='session_energy_kwh'"
            " AND ts>? AND ts<? ORDER BY ts",
            (session.charger, a - w, b),
        )
    ]
    return session_energy_kwh(float(before[0][0]) if before else None, windows)


def ev_deliveries(
    store: Store, scenario: Scenario, step: timedelta
) -> list[tuple[EvSession, float]]:
    """Every vehicle plugged in during the run (one that came before the start is plugged
    from the start, needing all it asked for), with the energy it received (kWh) by its
    departure or, if it leaves after the run, by the run's end."""
    sessions = scenario.sessions()
    out = []
    for s in sessions:
        if s.arrival >= scenario.end or s.departure <= scenario.start:
            continue
        later = [o.arrival for o in sessions if o.charger == s.charger and o.arrival > s.arrival]
        out.append((s, delivered_kwh(store, s, min(later) if later else None, step)))
    return out


def ev_unmet_kwh(session: EvSession, got_kwh: float, scenario: Scenario) -> float:
    """What `session` will not get (kWh): for a vehicle gone by the run's end, what it asked
    for less what it received; for one still plugged in, what it cannot get any more even at
    its full rate (the car's or the charger's, the lower) from the run's end to its departure
    (a lower bound: the site's limits may allow less)."""
    short = session.energy_needed_kwh - got_kwh
    if session.departure > scenario.end:
        d = scenario.site.device(session.charger)
        rating = plugin_for(d.kind).rating_kw(d)
        max_kw = min(session.vehicle_max_kw, rating if rating is not None else math.inf)
        short -= max_kw * (session.departure - scenario.end).total_seconds() / 3600
    return max(0.0, short)
