"""Events → per-step targets on a time grid, and the contract's requested-kW arithmetic.

A step [start, start + length) may be a 15-minute planning step or the 5 s control cycle.
Where events overlap, the lower `priority` number wins (an event without a priority ranks
after every numbered one); among equals the stricter target wins (more curtailment, a lower
cap), then the smaller event_id, so the outcome never depends on input order. Power signals
(`curtail_kw`, `import_cap_kw`, `import_target_kw`: one lane, one of them governs),
`price`, `export_cap_kw` and `carbon` are each resolved
separately: a price, an export cap or a carbon intensity never displaces an import request.
Test and cancelled events never produce targets.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from vpp.grid.messages import Event
from vpp.grid.types import Signal
from vpp.measure.target import target_ratio

POWER_SIGNALS: frozenset[Signal] = frozenset({"curtail_kw", "import_cap_kw", "import_target_kw"})


@dataclass(frozen=True)
class Segment:
    """A stretch of a step during which one event interval is the winning target."""

    start: datetime
    end: datetime
    event_id: str
    modification: int
    priority: int | None
    signal: Signal
    value: float
    """curtail kW (reduction), cap kW (import ceiling) or price per kWh."""
    interval_index: int

    @property
    def seconds(self) -> float:
        """Length of the segment (s)."""
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class StepTarget:
    """The resolved targets of one step."""

    start: datetime
    length: timedelta
    signal: Signal | None
    """The power signal covering most of the step; None when no power event is active."""
    value_kw: float | None
    """For curtail_kw the reduction averaged over the whole step (uncovered time counts as 0,
    so value × length is the requested energy); for import_cap_kw the lowest cap in it, for
    import_target_kw the lowest target."""
    coverage: float
    """Fraction 0–1 of the step under `signal`."""
    event_id: str | None
    """The winning event of `signal` with the longest share of the step."""
    price: float | None
    """Time-weighted mean price over the part of the step with a price event."""
    price_coverage: float
    segments: tuple[Segment, ...]
    """Every winning stretch, of every signal, in time order."""
    export_cap_kw: float | None = None
    """The lowest export ceiling of an export_cap_kw event in the step (kW ≥ 0)."""
    export_event_id: str | None = None
    """The export_cap_kw event whose cap that is."""
    carbon: float | None = None
    """Time-weighted mean carbon intensity over the part of the step with a carbon event
    (kg CO2/kWh)."""


def _rank(event: Event, value: float) -> tuple[float, float, str]:
    prio = math.inf if event.priority is None else float(event.priority)
    strict = -value if event.signal == "curtail_kw" else value
    return prio, strict, event.event_id


def _active(event: Event, t: datetime) -> int | None:
    for i, iv in enumerate(event.intervals):
        if iv.start <= t < iv.end:
            return i
        if iv.start > t:
            break
    return None


def step_target(events: Iterable[Event], start: datetime, length: timedelta) -> StepTarget:
    """Resolve the targets of the step [start, start + length) from live events."""
    if length <= timedelta(0):
        raise ValueError(f"step length must be positive, got {length}")
    end = start + length
    live = [e for e in events if not e.test and not e.cancelled and e.start < end and e.end > start]
    cuts = {start, end}
    for e in live:
        for iv in e.intervals:
            for t in (iv.start, iv.end):
                if start < t < end:
                    cuts.add(t)
    bounds = sorted(cuts)
    segments: list[Segment] = []
    for a, b in itertools.pairwise(bounds):
        best: dict[str, tuple[tuple[float, float, str], Segment]] = {}
        for e in live:
            i = _active(e, a)
            if i is None:
                continue
            value = e.intervals[i].value
            seg = Segment(a, b, e.event_id, e.modification, e.priority, e.signal, value, i)
            rank = _rank(e, value)
            lane = "power" if e.signal in POWER_SIGNALS else e.signal
            if lane not in best or rank < best[lane][0]:
                best[lane] = (rank, seg)
        segments.extend(seg for _, seg in sorted(best.values(), key=lambda b: b[1].signal))
    return _summarise(start, length, segments)


def _summarise(start: datetime, length: timedelta, segments: list[Segment]) -> StepTarget:
    total = length.total_seconds()
    power = [s for s in segments if s.signal in POWER_SIGNALS]
    prices = [s for s in segments if s.signal == "price"]
    signal: Signal | None = None
    value: float | None = None
    coverage = 0.0
    event_id: str | None = None
    if power:
        by_signal: dict[Signal, float] = {}
        for s in power:
            by_signal[s.signal] = by_signal.get(s.signal, 0.0) + s.seconds
        main: Signal = max(sorted(by_signal), key=lambda k: by_signal[k])
        signal = main
        mine = [s for s in power if s.signal == main]
        coverage = by_signal[main] / total
        if main == "curtail_kw":
            value = sum(s.value * s.seconds for s in mine) / total
        else:
            value = min(s.value for s in mine)
        share: dict[str, float] = {}
        for s in mine:
            share[s.event_id] = share.get(s.event_id, 0.0) + s.seconds
        event_id = max(sorted(share), key=lambda k: share[k])
    price: float | None = None
    price_s = sum(s.seconds for s in prices)
    if prices:
        price = sum(s.value * s.seconds for s in prices) / price_s
    # The lowest export cap in the step holds it all (as for import caps), for its event.
    cap = min(
        (s for s in segments if s.signal == "export_cap_kw"),
        key=lambda s: (s.value, s.event_id),
        default=None,
    )
    carbons = [s for s in segments if s.signal == "carbon"]
    carbon_s = sum(s.seconds for s in carbons)
    return StepTarget(
        start=start,
        length=length,
        signal=signal,
        value_kw=value,
        coverage=coverage,
        event_id=event_id,
        price=price,
        price_coverage=price_s / total,
        segments=tuple(segments),
        export_cap_kw=None if cap is None else cap.value,
        export_event_id=None if cap is None else cap.event_id,
        carbon=sum(s.value * s.seconds for s in carbons) / carbon_s if carbons else None,
    )


def step_targets(
    events: Iterable[Event], start: datetime, step: timedelta, count: int
) -> list[StepTarget]:
    """`count` consecutive steps of length `step` from `start` (a planning horizon)."""
    evs = list(events)
    return [step_target(evs, start + k * step, step) for k in range(count)]


def requested_kw(signal: Signal, value: float, baseline_kw: float) -> float:
    """The reduction an interval asks for (kW ≥ 0): curtail → value; cap → max(0, baseline −
    cap); price, export cap, import target and carbon → 0 (they request no reduction of
    import)."""
    if signal == "curtail_kw":
        return value
    if signal == "import_cap_kw":
        return max(0.0, baseline_kw - value)
    return 0.0


def import_limit_kw(signal: Signal, value: float, baseline_kw: float) -> float | None:
    """The site import (kW, consumption positive) that meets the interval: baseline − value
    for curtail, the cap itself for import_cap (the target for import_target), None for the
    other signals."""
    if signal == "curtail_kw":
        return baseline_kw - value
    if signal in ("import_cap_kw", "import_target_kw"):
        return value
    return None


def interval_ratio(
    signal: Signal, value: float, baseline_kw: float, actual_kw: float
) -> float | None:
    """delivered ÷ requested for one interval (delivered = baseline − actual, kW).

    For import_cap_kw with the baseline already under the cap nothing is requested: the
    interval counts as fully delivered (1.0) when actual stays under the cap, else 0.0; an
    export_cap_kw interval likewise when the export (−actual) stays at or under its value.
    An import_target_kw interval: `target_ratio` (how close the import came to the target).
    None when nothing was requested otherwise (a zero curtailment, a price, carbon).
    """
    requested = requested_kw(signal, value, baseline_kw)
    if requested > 0:
        return (baseline_kw - actual_kw) / requested
    if signal == "import_cap_kw":
        return 1.0 if actual_kw <= value else 0.0
    if signal == "export_cap_kw":
        return 1.0 if -actual_kw <= value else 0.0
    if signal == "import_target_kw":
        return target_ratio(value, actual_kw)
    return None
