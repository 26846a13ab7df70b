"""`series.csv` of a finished replay: the run's 15-min series, the figures behind the plots.

One row per 15-min interval of the run (local time of the scenario, with offset): the site's
import, the counterfactual's (the same day without events, when it ran), the baseline and
the target of the event in force, the event's requested and delivered kW and their ratio
(from the same report as summary.json; of the event interval covering most of the row),
and the power of each device kind with the base load (import − the devices). Means over the
interval in kW, consumption positive; an empty field is unknown (under 90 % of the interval
covered, or no event).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from vpp.measure import EventReport
from vpp.measure.report import IntervalReport
from vpp.measure.series import DEFAULT_STEP, StepSeries, ceil_to, floor_to, grid
from vpp.replay import readings as rd
from vpp.replay.scenario import Scenario
from vpp.store.store import Store

SERIES_FILE = "series.csv"
MIN_COVERAGE = 0.9
DECIMALS = 3


@dataclass(frozen=True)
class IntervalRow:
    """One 15-min interval of a run (kW means; None: unknown)."""

    start: datetime
    end: datetime
    site_import_kw: float | None
    counterfactual_kw: float | None
    baseline_kw: float | None
    target_kw: float | None
    event_id: str | None
    requested_kw: float | None
    delivered_kw: float | None
    ratio: float | None
    kinds_kw: dict[str, float | None]
    base_load_kw: float | None


def _mean(series: StepSeries, a: datetime, b: datetime) -> float | None:
    return series.average(a, b, min_coverage=MIN_COVERAGE).kw


def _target(signal: str, value: float, baseline: float | None) -> float | None:
    """The import the event asks for in an interval (None for a price or no baseline)."""
    if signal == "curtail_kw":
        return None if baseline is None else baseline - value
    if signal in ("import_cap_kw", "import_target_kw"):
        return value
    return None


def interval_rows(
    store: Store,
    scenario: Scenario,
    reports: dict[str, EventReport],
    counterfactual: Store | None = None,
) -> list[IntervalRow]:
    """The run's 15-min rows (see the module docstring)."""
    sc = scenario
    step = rd.resolution(sc)
    start, end = ceil_to(sc.start, DEFAULT_STEP), floor_to(sc.end, DEFAULT_STEP)
    meter = rd.step_series(rd.site_import(store, sc, sc.start, sc.end), step, "site import")
    cf = (
        rd.step_series(rd.site_import(counterfactual, sc, sc.start, sc.end), step, "cf")
        if counterfactual is not None
        else None
    )
    meter_id = rd.meter_id(sc)
    kinds: dict[str, list[StepSeries]] = {}
    for dev in sc.site.devices:
        if dev.id == meter_id:
            continue
        samples = rd.points(store, dev.id, "power_kw", sc.start, sc.end)
        if samples:
            kinds.setdefault(str(dev.kind), []).append(rd.step_series(samples, step, dev.id))
    # Each row takes the event interval covering most of it (events need not start on the
    # quarter hour; a longer interval covers several rows).
    by_start: dict[datetime, tuple[str, str, IntervalReport]] = {}
    best: dict[datetime, timedelta] = {}
    for ev_id, rep in reports.items():
        for iv in rep.intervals:
            iv_end = iv.start + iv.duration
            for slot in grid(floor_to(iv.start), ceil_to(iv_end)):
                overlap = min(iv_end, slot + DEFAULT_STEP) - max(iv.start, slot)
                if overlap > best.get(slot, timedelta(0)):
                    best[slot] = overlap
                    by_start[slot] = (ev_id, rep.signal, iv)
    out = []
    for a in grid(start, end, DEFAULT_STEP) if end > start else []:
        b = a + DEFAULT_STEP
        site = _mean(meter, a, b)
        per_kind: dict[str, float | None] = {}
        for kind, devices in kinds.items():
            known = [kw for d in devices if (kw := _mean(d, a, b)) is not None]
            per_kind[kind] = sum(known) if known else None
        known_kinds = [v for v in per_kind.values() if v is not None]
        base = site - sum(known_kinds) if site is not None else None
        ev = by_start.get(a)
        baseline = ev[2].baseline_kw if ev else None
        out.append(
            IntervalRow(
                start=a,
                end=b,
                site_import_kw=site,
                counterfactual_kw=_mean(cf, a, b) if cf is not None else None,
                baseline_kw=baseline,
                target_kw=_target(ev[1], ev[2].value, baseline) if ev else None,
                event_id=ev[0] if ev else None,
                requested_kw=ev[2].requested_kw if ev else None,
                delivered_kw=ev[2].delivered_kw if ev else None,
                ratio=ev[2].ratio if ev else None,
                kinds_kw=per_kind,
                base_load_kw=base,
            )
        )
    return out


def _cell(value: float | str | None) -> str | float:
    if value is None:
        return ""
    if isinstance(value, float):
        r = round(value, DECIMALS)
        return 0.0 if r == 0 else r
    return value


def write_series(out_dir: str | Path, rows: Sequence[IntervalRow], scenario: Scenario) -> Path:
    """Write `series.csv` into `out_dir`; returns its path."""
    path = Path(out_dir) / SERIES_FILE
    kinds = list(rows[0].kinds_kw) if rows else []
    head = ["interval_start", "interval_end", "site_import_kw", "counterfactual_kw"]
    head += ["baseline_kw", "target_kw", "event_id", "requested_kw", "delivered_kw", "ratio"]
    head += [f"{k}_kw" for k in kinds] + ["base_load_kw"]
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(head)
        for r in rows:
            w.writerow(
                [
                    r.start.astimezone(scenario.tz).isoformat(),
                    r.end.astimezone(scenario.tz).isoformat(),
                    *map(_cell, (r.site_import_kw, r.counterfactual_kw, r.baseline_kw)),
                    *map(_cell, (r.target_kw, r.event_id, r.requested_kw, r.delivered_kw)),
                    _cell(r.ratio),
                    *(_cell(r.kinds_kw.get(k)) for k in kinds),
                    _cell(r.base_load_kw),
                ]
            )
    return path


__all__ = ["SERIES_FILE", "IntervalRow", "interval_rows", "write_series"]
