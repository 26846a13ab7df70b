"""Step-hold power series: interval averages on a grid and energy, with gaps reported.

A sample `(ts, kw)` holds its value from `ts` until the next sample, but never longer than
`max_hold`: beyond that the series has a gap, and a gap is reported (as missing coverage),
never filled in. All arithmetic runs on UTC instants, so a series in a zone with daylight
saving time integrates over the real elapsed time (an aware datetime minus another in the same
`ZoneInfo` would otherwise subtract wall-clock times).

Sign: consumption positive (+kW drawn from the grid), as everywhere in `vpp`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DEFAULT_STEP = timedelta(minutes=15)
_H = 3600.0


def utc(ts: datetime, field: str = "ts") -> datetime:
    """`ts` as a UTC datetime; a naive datetime is rejected with an error naming `field`."""
    if ts.tzinfo is UTC:
        return ts
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(
            f"{field}: naive datetime {ts.isoformat()} (an explicit offset is required)"
        )
    return ts.astimezone(UTC)


def seconds(delta: timedelta) -> float:
    """`delta` in seconds (exact for whole microseconds)."""
    return delta / timedelta(seconds=1)


@dataclass(frozen=True)
class Gap:
    """A stretch `[start, end)` (UTC) where the series has no value."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class IntervalAverage:
    """Time-weighted mean power over `[start, start + duration)`.

    `kw` is the mean over the covered part of the interval (consumption positive), or `None`
    when the covered fraction `coverage` (0..1) is below the caller's `min_coverage`.
    """

    start: datetime
    duration: timedelta
    kw: float | None
    coverage: float = 1.0

    @property
    def end(self) -> datetime:
        """End of the interval (exclusive)."""
        return self.start + self.duration

    @property
    def hours(self) -> float:
        """Length of the interval in hours."""
        return seconds(self.duration) / _H

    @property
    def energy_kwh(self) -> float | None:
        """Energy over the whole interval at the mean power, kWh (`None` when `kw` is)."""
        return None if self.kw is None else self.kw * self.hours


@dataclass(frozen=True)
class Segment:
    """One held value: `kw` over `[start, end)` (UTC)."""

    start: datetime
    end: datetime
    kw: float


class StepSeries:
    """A step-hold series of `(aware datetime, value)` samples, e.g. site import in kW.

    `max_hold` bounds how long a sample's value holds without a newer one (default 15 min,
    which reproduces a series of 15-min interval averages given at interval starts). For
    telemetry every 5 s, pass a few telemetry periods so that an outage shows as a gap.
    """

    def __init__(
        self,
        samples: Iterable[tuple[datetime, float]],
        *,
        max_hold: timedelta = DEFAULT_STEP,
        name: str = "series",
    ) -> None:
        if max_hold <= timedelta(0):
            raise ValueError(f"{name}.max_hold: must be positive, got {max_hold}")
        self.name = name
        self.max_hold = max_hold
        points: list[tuple[datetime, float]] = []
        for i, (ts, value) in enumerate(samples):
            t = utc(ts, f"{name}[{i}].ts")
            v = float(value)
            if not math.isfinite(v):
                raise ValueError(f"{name}[{i}].value: not a finite number ({value!r})")
            if points and t <= points[-1][0]:
                raise ValueError(
                    f"{name}[{i}].ts: {t.isoformat()} is not after the previous sample "
                    f"{points[-1][0].isoformat()} (samples must be strictly increasing)"
                )
            points.append((t, v))
        self._segments: list[Segment] = []
        for i, (t, v) in enumerate(points):
            end = t + max_hold
            if i + 1 < len(points):
                end = min(end, points[i + 1][0])
            self._segments.append(Segment(t, end, v))
        self._starts = [s.start for s in self._segments]

    @classmethod
    def from_intervals(
        cls, intervals: Iterable[IntervalAverage], *, name: str = "series"
    ) -> StepSeries:
        """A series whose values hold exactly over each interval with a known `kw`."""
        series = cls([], name=name)
        segs: list[Segment] = []
        for p in sorted(intervals, key=lambda p: utc(p.start, f"{name}.start")):
            if p.kw is None:
                continue
            start = utc(p.start)
            if segs and segs[-1].end > start:
                raise ValueError(f"{name}: intervals overlap at {start.isoformat()}")
            segs.append(Segment(start, start + p.duration, p.kw))
        series._segments = segs
        series._starts = [s.start for s in segs]
        return series

    def __len__(self) -> int:
        return len(self._segments)

    def segments(self, start: datetime, end: datetime) -> list[Segment]:
        """The held values clipped to `[start, end)`, in time order."""
        a, b = utc(start, "start"), utc(end, "end")
        out: list[Segment] = []
        segs = self._segments
        for i in range(max(0, bisect.bisect_right(self._starts, a) - 1), len(segs)):
            seg = segs[i]
            if seg.start >= b:
                break
            lo, hi = max(seg.start, a), min(seg.end, b)
            if hi > lo:
                out.append(Segment(lo, hi, seg.kw))
        return out

    def _integral_s(self, start: datetime, end: datetime) -> tuple[float, timedelta]:
        parts: list[float] = []
        covered = timedelta(0)
        for seg in self.segments(start, end):
            parts.append(seg.kw * seconds(seg.end - seg.start))
            covered += seg.end - seg.start
        return math.fsum(parts), covered

    def integral(self, start: datetime, end: datetime) -> tuple[float, timedelta]:
        """(value·hours over the covered part of `[start, end)`, covered duration).

        For a kW series the first item is energy in kWh.
        """
        total_s, covered = self._integral_s(start, end)
        return total_s / _H, covered

    def energy_kwh(self, start: datetime, end: datetime) -> float:
        """Energy over `[start, end)` in kWh; raises if any part of it is a gap."""
        kwh, covered = self.integral(start, end)
        if covered < utc(end, "end") - utc(start, "start"):
            gaps = ", ".join(
                f"{g.start.isoformat()}–{g.end.isoformat()}" for g in self.gaps(start, end)
            )
            raise ValueError(f"{self.name}: gaps in {start.isoformat()}–{end.isoformat()}: {gaps}")
        return kwh

    def gaps(self, start: datetime, end: datetime) -> list[Gap]:
        """The stretches of `[start, end)` with no value, in time order."""
        a, b = utc(start, "start"), utc(end, "end")
        out: list[Gap] = []
        cursor = a
        for seg in self.segments(a, b):
            if seg.start > cursor:
                out.append(Gap(cursor, seg.start))
            cursor = seg.end
        if cursor < b:
            out.append(Gap(cursor, b))
        return out

    def average(
        self, start: datetime, end: datetime, *, min_coverage: float = 1.0
    ) -> IntervalAverage:
        """Time-weighted mean over `[start, end)`, `kw=None` if coverage < `min_coverage`."""
        a, b = utc(start, "start"), utc(end, "end")
        if b <= a:
            raise ValueError(f"end: {end.isoformat()} is not after start {start.isoformat()}")
        total_s, covered = self._integral_s(a, b)
        coverage = seconds(covered) / seconds(b - a)
        kw: float | None = None
        if covered > timedelta(0) and coverage >= min_coverage - 1e-12:
            kw = total_s / seconds(covered)
        return IntervalAverage(a, b - a, kw, coverage)

    def on_grid(
        self,
        start: datetime,
        end: datetime,
        *,
        step: timedelta = DEFAULT_STEP,
        min_coverage: float = 1.0,
    ) -> list[IntervalAverage]:
        """Interval averages over `[start, end)` in steps of `step` (default 15 min)."""
        return [
            self.average(s, s + step, min_coverage=min_coverage) for s in grid(start, end, step)
        ]


def grid(start: datetime, end: datetime, step: timedelta = DEFAULT_STEP) -> list[datetime]:
    """UTC interval starts from `start` to `end` (exclusive); `end - start` must be whole steps."""
    a, b = utc(start, "start"), utc(end, "end")
    if step <= timedelta(0):
        raise ValueError(f"step: must be positive, got {step}")
    if b < a or (b - a) % step:
        raise ValueError(
            f"end: {end.isoformat()} is not whole {step} steps after {start.isoformat()}"
        )
    return [a + k * step for k in range((b - a) // step)]


def floor_to(ts: datetime, step: timedelta = DEFAULT_STEP) -> datetime:
    """`ts` (UTC) rounded down to a multiple of `step` since the Unix epoch."""
    t = utc(ts)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((t - epoch) // step) * step


def ceil_to(ts: datetime, step: timedelta = DEFAULT_STEP) -> datetime:
    """`ts` (UTC) rounded up to a multiple of `step` since the Unix epoch."""
    f = floor_to(ts, step)
    return f if f == utc(ts) else f + step
