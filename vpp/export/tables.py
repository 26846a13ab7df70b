"""The tables `vpp export` writes, built from a read-only store (docs/operations.md, Exports).

- `energy`: per interval and device, energy (kWh) and mean power (kW) of the device's power
  point (the meter's is the site's import), consumption positive, with the interval's
  coverage; every interval of the range for each device that reported power in it.
- `telemetry`: per interval, device and point, the mean, min and max of the stored windows
  that start in the interval and how many readings they hold.
- `events`: every event received or active in the range (newest modification, status).
- `reports`: every report stored in the range (interim and final), with its headline figures.
- `report_intervals`: the per-interval rows of each event's newest report in the range.

Times are datetimes in the export's time zone; figures are rounded to 4 decimals.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from itertools import groupby
from typing import Any

from vpp.export.series import Interval, grid, hold_s, interval_energy, rounded
from vpp.grid.types import parse_duration, parse_time
from vpp.store.reader import EventRow, ReportRow, StoreReader, TelemetryRow

Cell = str | int | float | bool | datetime | None


@dataclass(frozen=True)
class Table:
    """A table to write: its name (the file's stem), columns and rows."""

    name: str
    columns: tuple[str, ...]
    rows: list[tuple[Cell, ...]] = field(default_factory=list)


@dataclass(frozen=True)
class ExportRange:
    """What to export: `[start, end)`, cut into intervals of `resolution`, times shown in
    `tz`. `window_s`: the store's telemetry window (the site file's), None when unknown.
    `power_points`: device id → its power point (from the site file), else the first of
    `default_power_points` a device has."""

    start: datetime
    end: datetime
    resolution: timedelta
    tz: tzinfo
    window_s: float | None = None
    power_points: dict[str, str] = field(default_factory=dict)
    default_power_points: tuple[str, ...] = ("power_kw",)

    def local(self, ts: float) -> datetime:
        return datetime.fromtimestamp(ts, self.tz)


TABLES: dict[str, Callable[[StoreReader, ExportRange], Table]] = {}
"""Table name → its builder (the `--table` choices)."""


def _table(name: str) -> Callable[[Callable[..., Table]], Callable[..., Table]]:
    def register(fn: Callable[..., Table]) -> Callable[..., Table]:
        TABLES[name] = fn
        return fn

    return register


def _series(reader: StoreReader, r: ExportRange) -> Iterable[tuple[str, str, list[TelemetryRow]]]:
    rows = reader.telemetry(r.start.timestamp(), r.end.timestamp())
    for (device, point), group in groupby(rows, key=lambda w: (w.device_id, w.point)):
        yield device, point, list(group)


@_table("energy")
def energy(reader: StoreReader, r: ExportRange) -> Table:
    """Energy and mean power per interval and device."""
    cols = ("interval_start", "interval_end", "device_id", "point")
    t = Table("energy", (*cols, "energy_kwh", "mean_kw", "coverage"))
    intervals = grid(r.start.timestamp(), r.end.timestamp(), r.resolution.total_seconds())
    by_device: dict[str, dict[str, list[TelemetryRow]]] = {}
    wanted = {*r.power_points.values(), *r.default_power_points}
    for device, name, series in _series(reader, r):
        if name in wanted:  # only power points are kept in memory
            by_device.setdefault(device, {})[name] = series
    for device, points in by_device.items():
        point = r.power_points.get(device) or next(
            (p for p in r.default_power_points if p in points), None
        )
        if point is None or point not in points:
            continue
        windows = points[point]
        if not any(r.start.timestamp() <= w.ts < r.end.timestamp() for w in windows):
            continue
        times = [w.ts for w in windows]
        hold = hold_s(times, r.window_s)
        figures = interval_energy([(w.ts, w.mean) for w in windows], intervals, hold)
        for iv, f in zip(intervals, figures, strict=True):
            t.rows.append(
                (
                    *(r.local(iv.start), r.local(iv.end), device, point),
                    *(rounded(f.energy_kwh), rounded(f.mean_kw), rounded(f.coverage)),
                )
            )
    t.rows.sort(key=lambda row: (row[0], row[2]))
    return t


@_table("telemetry")
def telemetry(reader: StoreReader, r: ExportRange) -> Table:
    """Every stored point's mean, min and max per interval."""
    cols = ("interval_start", "interval_end", "device_id", "point")
    t = Table("telemetry", (*cols, "mean", "min", "max", "readings"))
    start, end = r.start.timestamp(), r.end.timestamp()
    step = r.resolution.total_seconds()
    for device, point, windows in _series(reader, r):
        inside = [w for w in windows if start <= w.ts < end]
        for k, group in groupby(inside, key=lambda w: int((w.ts - start) // step)):
            ws = list(group)
            n = sum(w.n for w in ws)
            mean = sum(w.mean * w.n for w in ws) / n if n else sum(w.mean for w in ws) / len(ws)
            iv = Interval(start + k * step, min(start + (k + 1) * step, end))
            t.rows.append(
                (
                    *(r.local(iv.start), r.local(iv.end), device, point),
                    rounded(mean),
                    rounded(min(w.min for w in ws)),
                    rounded(max(w.max for w in ws)),
                    n,
                )
            )
    t.rows.sort(key=lambda row: (row[0], row[2], row[3]))
    return t


def _event_window(payload: dict[str, Any]) -> tuple[datetime, datetime] | None:
    """The first interval's start and the last one's end of a stored event, if readable."""
    ev = payload.get("event", payload)
    try:
        ivs = [(parse_time(i["start"]), parse_duration(i["duration"])) for i in ev["intervals"]]
    except (KeyError, TypeError, ValueError):
        return None
    if not ivs:
        return None
    return min(s for s, _ in ivs), max(s + d for s, d in ivs)


@_table("events")
def events(reader: StoreReader, r: ExportRange) -> Table:
    """Events received in the range or active in it."""
    t = Table(
        "events",
        (
            *("event_id", "modification", "status", "signal", "test", "start", "end"),
            *("received", "updated", "payload"),
        ),
    )
    lo, hi = r.start.timestamp(), r.end.timestamp()
    for e in reader.events():
        window = _event_window(e.payload)
        active = window is not None and window[0].timestamp() < hi and window[1].timestamp() > lo
        if not active and not lo <= e.received_ts < hi:
            continue
        ev = e.payload.get("event", e.payload)
        t.rows.append(
            (
                *(e.event_id, e.modification, e.status, ev.get("signal"), bool(ev.get("test"))),
                window[0].astimezone(r.tz) if window else None,
                window[1].astimezone(r.tz) if window else None,
                r.local(e.received_ts),
                r.local(e.updated_ts),
                json.dumps(e.payload, sort_keys=True),
            )
        )
    return t


def _reports_in(reader: StoreReader, r: ExportRange) -> list[ReportRow]:
    lo, hi = r.start.timestamp(), r.end.timestamp()
    return [p for p in reader.reports() if lo <= p.ts < hi]


@_table("reports")
def reports(reader: StoreReader, r: ExportRange) -> Table:
    """Reports stored in the range, with their headline figures."""
    heads = ("signal", "requested_kwh", "delivered_kwh", "delivered_ratio", "baseline_method")
    t = Table(
        "reports",
        (
            "stored",
            "event_id",
            "modification",
            "final",
            *heads,
            "comfort_violation_degC_h",
            "payload",
        ),
    )
    for p in _reports_in(reader, r):
        d = p.payload
        raw = d.get("details")
        details: dict[str, Any] = raw if isinstance(raw, dict) else {}
        t.rows.append(
            (
                *(r.local(p.ts), p.event_id, p.modification, p.final, d.get("signal")),
                _num(details.get("requested_kwh")),
                _num(details.get("delivered_kwh")),
                _num(d.get("delivered_ratio")),
                d.get("baseline_method"),
                _num(d.get("comfort_violation_degC_h")),
                json.dumps(d, sort_keys=True),
            )
        )
    return t


@_table("report_intervals")
def report_intervals(reader: StoreReader, r: ExportRange) -> Table:
    """Each event's newest report in the range, one row per interval."""
    figures = ("requested_kw", "baseline_kw", "actual_kw", "delivered_kw", "ratio", "shortfall_kw")
    t = Table(
        "report_intervals",
        ("event_id", "modification", "final", "interval_start", "interval_end", *figures),
    )
    newest: dict[str, ReportRow] = {}
    for p in _reports_in(reader, r):
        newest[p.event_id] = p
    for p in newest.values():
        for iv in p.payload.get("intervals") or []:
            try:
                start = parse_time(iv["start"])
                end = start + parse_duration(iv["duration"])
            except (KeyError, TypeError, ValueError):
                continue
            t.rows.append(
                (
                    *(p.event_id, p.modification, p.final),
                    *(start.astimezone(r.tz), end.astimezone(r.tz)),
                    *(_num(iv.get(k)) for k in figures),
                )
            )
    return t


def _num(value: Any) -> float | None:
    return rounded(float(value)) if isinstance(value, int | float) else None


def build(reader: StoreReader, r: ExportRange, names: Sequence[str]) -> list[Table]:
    """The tables named (in `TABLES` order when all)."""
    return [TABLES[n](reader, r) for n in names]


__all__ = ["TABLES", "EventRow", "ExportRange", "Table", "build"]
