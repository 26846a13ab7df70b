"""The per-event performance report of the grid contract (grid-interface.md §Report).

Per interval: requested reduction, baseline, actual import, delivered = baseline − actual
(kW, import positive) and the interval ratio delivered ÷ requested. For `curtail_kw` the
requested reduction is the interval's value; for `import_cap_kw` it is max(0, baseline − cap),
and an interval whose baseline is already under the cap counts as fully delivered (ratio 1)
when the actual import stays under the cap (ratio 0 when it does not). An `export_cap_kw`
interval requests no reduction (0 kW): it is delivered (ratio 1) when the site's export,
−actual, stays at or under its value, and its shortfall is the export past it; its
`delivered_ratio` is then the share of compliant time, as for a cap never binding. An
`import_target_kw` interval requests no reduction either: its ratio is how close the import
came to the target, 1 − |actual − target| ÷ max(target, 1 kW) clipped to 0–1
(vpp.measure.target), and its shortfall |actual − target| kW. `price` and `carbon` request
nothing and have no ratio.
`delivered_ratio` = total delivered energy ÷ total requested energy over the intervals that
requested something and have both a baseline and a metered value; intervals that requested
nothing carry no weight there and show their compliance in their own ratio.

Pure: the same inputs give the same report, and `to_json()` the same bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from vpp.measure.baseline import BaselineResult
from vpp.measure.comfort import ZoneComfortInput, ZoneComfortResult, zone_comfort
from vpp.measure.contract import report_dict
from vpp.measure.contribution import DeviceContribution, DeviceInput, device_contribution
from vpp.measure.series import StepSeries, seconds, utc
from vpp.measure.target import target_ratio

Signal = Literal[
    "curtail_kw", "import_cap_kw", "price", "export_cap_kw", "carbon", "import_target_kw"
]
REQUEST_RESOLUTION_KW = 1e-3
"""A requested reduction below this (1 W, the report's resolution) counts as none: a cap a
hair under the baseline must not turn float noise into a ratio of millions."""


@dataclass(frozen=True)
class EventInterval:
    """One interval of an event: `[start, start + duration)` and its `value` (kW for
    `curtail_kw` and `import_cap_kw`, price per kWh for `price`)."""

    start: datetime
    duration: timedelta
    value: float


@dataclass(frozen=True)
class EventSpec:
    """The event being measured, as plain data (mapped from the grid message by the caller)."""

    event_id: str
    modification: int
    signal: Signal
    intervals: tuple[EventInterval, ...]
    program: str | None = None

    def __post_init__(self) -> None:
        if self.signal not in get_args(Signal):
            raise ValueError(f"signal: unknown signal {self.signal!r}")
        if not self.intervals:
            raise ValueError("intervals: an event needs at least one interval")
        prev_end: datetime | None = None
        for i, iv in enumerate(self.intervals):
            start = utc(iv.start, f"intervals[{i}].start")
            if iv.duration <= timedelta(0):
                raise ValueError(f"intervals[{i}].duration: must be positive")
            if not math.isfinite(iv.value):
                raise ValueError(f"intervals[{i}].value: not a finite number")
            if prev_end is not None and start < prev_end:
                raise ValueError(f"intervals[{i}].start: overlaps or precedes the interval before")
            prev_end = start + iv.duration

    @property
    def start(self) -> datetime:
        """Start of the first interval (UTC)."""
        return utc(self.intervals[0].start)

    @property
    def end(self) -> datetime:
        """End of the last interval (UTC)."""
        return utc(self.intervals[-1].start) + self.intervals[-1].duration


@dataclass(frozen=True)
class IntervalReport:
    """One reported interval. kW values are means over the interval (import positive);
    `None` means unknown, and `notes` say why. `shortfall_kw` is how far delivery fell short
    of the request (for a cap already above baseline: how far import exceeded the cap)."""

    start: datetime
    duration: timedelta
    value: float
    requested_kw: float | None
    baseline_kw: float | None
    actual_kw: float | None
    delivered_kw: float | None
    ratio: float | None
    shortfall_kw: float | None
    offline_devices: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def hours(self) -> float:
        """Length in hours."""
        return seconds(self.duration) / 3600.0


@dataclass(frozen=True)
class EventReport:
    """A partial (`final=False`, elapsed intervals only) or final performance report."""

    event_id: str
    modification: int
    program: str | None
    signal: Signal
    baseline_method: str
    final: bool
    intervals: tuple[IntervalReport, ...]
    requested_kwh: float
    delivered_kwh: float
    delivered_ratio: float | None
    comfort_violation_degc_h: float
    zones: tuple[ZoneComfortResult, ...] = ()
    devices: tuple[DeviceContribution, ...] = ()
    baseline: BaselineResult | None = field(default=None, repr=False)
    notes: tuple[str, ...] = ()

    def to_contract_dict(self, *, details: bool = True) -> dict[str, Any]:
        """The report message of the contract, floats rounded to 3 decimals.

        With `details=False` exactly the contract's fields; by default also each interval's
        `ratio`, `shortfall_kw` and `missing` (offline devices, notes) and a top-level
        `details` object (partial/final, energies, baseline days and adjustment, devices,
        zones) for whoever settles the event.
        """
        return report_dict(self, details=details)

    def to_json(self, *, details: bool = True) -> str:
        """`to_contract_dict()` as compact JSON (same report → same bytes)."""
        return json.dumps(self.to_contract_dict(details=details), separators=(",", ":"))


def _requested(signal: Signal, value: float, baseline: float | None) -> float | None:
    if signal == "curtail_kw":
        req = value
    elif signal == "import_cap_kw" and baseline is not None:
        req = max(0.0, baseline - value)
    elif signal in ("export_cap_kw", "import_target_kw"):
        req = 0.0  # an export ceiling or an import target asks for no reduction of import
    else:
        return None
    return 0.0 if req < REQUEST_RESOLUTION_KW else req


def _ratio_and_shortfall(
    signal: Signal,
    value: float,
    requested: float | None,
    delivered: float | None,
    actual: float | None,
) -> tuple[float | None, float | None]:
    if requested is None:
        return None, None
    if requested > 0:
        if delivered is None:
            return None, None
        return delivered / requested, max(0.0, requested - delivered)
    if signal == "import_cap_kw":
        # Baseline already under the cap: fully delivered while import stays under it.
        if actual is None:
            return None, None
        return (1.0 if actual <= value else 0.0), max(0.0, actual - value)
    if signal == "import_target_kw":
        if actual is None:
            return None, None
        return target_ratio(value, actual), abs(actual - value)
    if signal == "export_cap_kw":
        if actual is None:
            return None, None
        return (1.0 if -actual <= value + REQUEST_RESOLUTION_KW else 0.0), max(0.0, -actual - value)
    return None, 0.0  # a curtailment of 0 kW asks for nothing


def build_report(
    event: EventSpec,
    *,
    baseline: BaselineResult,
    site: StepSeries,
    as_of: datetime | None = None,
    zones: Sequence[ZoneComfortInput] = (),
    devices: Sequence[DeviceInput] = (),
    comfort_window: tuple[datetime, datetime] | None = None,
    device_reference_window: tuple[datetime, datetime] | None = None,
    min_coverage: float = 0.9,
) -> EventReport:
    """The event's report from its baseline and the metered site import (kW, import positive).

    `as_of`: for a report while the event runs, only intervals ended by then are reported
    and the report is partial; `None` or a time at or after the event end makes it final.
    `zones`: temperature series and bands, integrated over `comfort_window` (default: from
    the event start to the end of the last reported interval). `devices`: power series,
    offline periods and optional own baselines; the pre-event reference window defaults to
    the baseline's adjustment window, else the 3 hours ending 1 hour before the event.
    An interval's metered or device mean needs `min_coverage` of the interval covered.
    """
    cutoff = event.end if as_of is None else utc(as_of, "as_of")
    final = cutoff >= event.end
    reported = [iv for iv in event.intervals if utc(iv.start) + iv.duration <= cutoff]
    base_series = StepSeries.from_intervals(baseline.adjusted, name="baseline")
    notes: list[str] = []
    if baseline.reason:
        notes.append(f"baseline: {baseline.reason}")
    if baseline.adjustment is not None and baseline.adjustment.reason:
        notes.append(f"baseline adjustment: {baseline.adjustment.reason}")
    if baseline.adjustment is not None and baseline.adjustment.moved:
        notes.append(f"baseline adjustment: {baseline.adjustment.moved}")

    spans = [(utc(iv.start), iv.duration) for iv in reported]
    if device_reference_window is None:
        adj = baseline.adjustment
        device_reference_window = (
            (adj.window_start, adj.window_end)
            if adj is not None
            else (event.start - timedelta(hours=4), event.start - timedelta(hours=1))
        )
    contributions = tuple(
        device_contribution(
            d, spans, reference_window=device_reference_window, min_coverage=min_coverage
        )
        for d in sorted(devices, key=lambda d: d.device_id)
    )

    rows: list[IntervalReport] = []
    req_kwh: list[float] = []
    del_kwh: list[float] = []
    for k, iv in enumerate(reported):
        start, end = utc(iv.start), utc(iv.start) + iv.duration
        b = base_series.average(start, end).kw
        meter = site.average(start, end, min_coverage=min_coverage)
        a = meter.kw
        delivered = None if b is None or a is None else b - a
        requested = _requested(event.signal, iv.value, b)
        ratio, shortfall = _ratio_and_shortfall(event.signal, iv.value, requested, delivered, a)
        offline = tuple(c.device_id for c in contributions if c.intervals[k].offline)
        why: list[str] = []
        if b is None:
            why.append("no baseline for this interval")
        if a is None:
            why.append(f"site meter covers {meter.coverage:.0%} of the interval: no actual")
        elif meter.coverage < 1.0:
            why.append(f"site meter covers {meter.coverage:.0%} of the interval")
        if shortfall and requested is not None and requested > 0:
            why.append(f"delivered {delivered:.3f} of {requested:.3f} kW requested")
        elif shortfall and requested == 0 and event.signal == "import_target_kw":
            why.append(
                f"import {a or 0.0:.3f} kW, {shortfall:.3f} kW off the {iv.value:.3f} kW target"
            )
        elif shortfall and requested == 0 and event.signal == "export_cap_kw":
            why.append(f"export {-(a or 0.0):.3f} kW above the {iv.value:.3f} kW export cap")
        elif shortfall and requested == 0:
            why.append(f"import {a:.3f} kW above the {iv.value:.3f} kW cap")
        if offline and shortfall:
            why.append("offline: " + ", ".join(offline))
        rows.append(
            IntervalReport(
                iv.start,
                iv.duration,
                iv.value,
                requested,
                b,
                a,
                delivered,
                ratio,
                shortfall,
                offline,
                tuple(why),
            )
        )
        if requested is not None and requested > 0 and delivered is not None:
            h = seconds(iv.duration) / 3600.0
            req_kwh.append(requested * h)
            del_kwh.append(delivered * h)

    requested_kwh, delivered_kwh = math.fsum(req_kwh), math.fsum(del_kwh)
    if requested_kwh > 0:
        ratio_all: float | None = delivered_kwh / requested_kwh
    else:
        # Nothing requested in energy terms (e.g. every baseline under the cap): the
        # duration-weighted mean of the interval ratios, i.e. the share of compliant time.
        rated = [(r.ratio, r.hours) for r in rows if r.ratio is not None]
        hours = math.fsum(h for _, h in rated)
        ratio_all = math.fsum(x * h for x, h in rated) / hours if hours > 0 else None

    if comfort_window is None:
        comfort_window = (event.start, spans[-1][0] + spans[-1][1] if spans else event.start)
    zone_results: tuple[ZoneComfortResult, ...] = ()
    if comfort_window[1] > comfort_window[0]:
        zone_results = tuple(
            zone_comfort(z, *comfort_window) for z in sorted(zones, key=lambda z: z.zone_id)
        )
    for z in zone_results:
        if z.gaps:
            notes.append(f"zone {z.zone_id}: no temperature data for {len(z.gaps)} stretches")
    comfort = math.fsum(z.violation_degc_h for z in zone_results)

    return EventReport(
        event.event_id,
        event.modification,
        event.program,
        event.signal,
        baseline.method,
        final,
        tuple(rows),
        requested_kwh,
        delivered_kwh,
        ratio_all,
        comfort,
        zone_results,
        contributions,
        baseline,
        tuple(notes),
    )
