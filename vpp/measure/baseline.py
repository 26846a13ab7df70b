"""Baselines: what the site would have drawn without the event.

Two methods, both returning a `BaselineResult` on a 15-min grid (kW, consumption positive):

- `x_of_y_baseline`: the like-day baseline of settlement practice (CAISO 10-in-10 by default,
  PJM "high 4 of 5" with `XofYConfig(x=4, y=5, adjustment="additive")`), with a day-of
  adjustment from the hours before the event that skips the hour just before it (pre-cooling
  would otherwise inflate the baseline), capped at ±20 % by default. The adjustment window
  also moves earlier past every `Busy` span the caller names (the event's own preparation
  once it was known, another event of the day and its recovery): the site ran otherwise then.
- `counterfactual_baseline`: in simulation, the same site run without the event.

Like days are local calendar days in the site's time zone; an interval of the event day is
matched with the same local wall-clock time on each like day, so daylight saving time shifts
are followed. Nothing is filled in silently: a shortfall of like days or a skipped adjustment
is stated in the result's `reason` / `adjustment.reason`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo

from vpp.measure.calendar import DayCalendar
from vpp.measure.series import (
    DEFAULT_STEP,
    IntervalAverage,
    StepSeries,
    ceil_to,
    floor_to,
    grid,
    utc,
)

AdjustmentMode = Literal["multiplicative", "additive", "none"]


@dataclass(frozen=True)
class XofYConfig:
    """Parameters of the X-of-Y like-day baseline.

    Of the `y` most recent eligible like days within `max_lookback_days` before the event day,
    the `x` with the highest mean load over the event window are averaged per interval.
    The day-of adjustment compares the event day with those days over the `adjustment_window`
    that ends `adjustment_gap` before the event start; `adjustment_cap` bounds it as a fraction
    (0.2 = ±20 %; `None` = uncapped). With fewer than `min_days` like days there is no baseline.
    """

    x: int = 10
    y: int = 10
    max_lookback_days: int = 45
    min_days: int = 1
    adjustment: AdjustmentMode = "multiplicative"
    adjustment_window: timedelta = timedelta(hours=3)
    adjustment_gap: timedelta = timedelta(hours=1)
    adjustment_cap: float | None = 0.20
    step: timedelta = DEFAULT_STEP

    def __post_init__(self) -> None:
        if self.y < 1:
            raise ValueError(f"y: must be at least 1, got {self.y}")
        if not 1 <= self.x <= self.y:
            raise ValueError(f"x: must be between 1 and y={self.y}, got {self.x}")
        if self.max_lookback_days < self.y:
            raise ValueError(f"max_lookback_days: must be at least y={self.y}")
        if not 1 <= self.min_days <= self.y:
            raise ValueError(f"min_days: must be between 1 and y={self.y}, got {self.min_days}")
        if self.adjustment not in ("multiplicative", "additive", "none"):
            raise ValueError(f"adjustment: unknown mode {self.adjustment!r}")
        if self.adjustment_window <= timedelta(0):
            raise ValueError("adjustment_window: must be positive")
        if self.adjustment_gap < timedelta(0):
            raise ValueError("adjustment_gap: must not be negative")
        cap = self.adjustment_cap
        if cap is not None and not (math.isfinite(cap) and 0 <= cap < 1):
            raise ValueError(f"adjustment_cap: must be in [0, 1) or None, got {cap}")
        if self.step <= timedelta(0) or timedelta(days=1) % self.step:
            raise ValueError(f"step: must divide a day, got {self.step}")

    @property
    def label(self) -> str:
        """The `baseline_method` string of reports, e.g. `x_of_y:10/10:multiplicative:cap=0.20`."""
        adj: str = self.adjustment
        if adj != "none":
            adj += ":uncapped" if self.adjustment_cap is None else f":cap={self.adjustment_cap:.2f}"
        return f"x_of_y:{self.x}/{self.y}:{adj}"


@dataclass(frozen=True)
class Busy:
    """A span `[start, end)` in which the site did not run as it usually does (an event and
    its recovery; an event known and being prepared for), with `why` for the report.

    `preparation`: the event's own span from its receipt. It moves the window only when the
    event came after the default window began (short notice: the plan's pre-cooling or
    pre-charging falls in it); an event known before is settled on the default window, as
    programs settle day-ahead events (the gap before the event keeps pre-conditioning out).
    """

    start: datetime
    end: datetime
    why: str
    preparation: bool = False


ADJUSTMENT_REACH = timedelta(hours=24)
"""A day-of adjustment window moved past busy spans must start within this of the event."""


@dataclass(frozen=True)
class Adjustment:
    """The day-of adjustment that turned the unadjusted baseline into the adjusted one.

    `raw` is the uncapped value and `applied` the one used: a factor for `multiplicative`
    (1.0 = none), an offset in kW for `additive` (0.0 = none). `event_day_kw` and `baseline_kw`
    are the mean loads over `[window_start, window_end)` on the event day and in the
    unadjusted baseline. `reason` says why no adjustment was applied, when none was;
    `moved` why the window is earlier than `adjustment_gap` before the event (busy spans).
    """

    mode: AdjustmentMode
    window_start: datetime
    window_end: datetime
    event_day_kw: float | None
    baseline_kw: float | None
    raw: float | None
    applied: float
    capped: bool
    reason: str | None = None
    moved: str | None = None


@dataclass(frozen=True)
class BaselineResult:
    """A baseline profile with how it was made.

    `unadjusted` and `adjusted` are 15-min interval averages (kW, consumption positive) over
    the requested profile window; both are empty when no baseline could be made, and then
    `reason` says why. `reason` also explains any fallback (fewer like days than asked).
    `days_used` (the X averaged) and `days_considered` (the Y eligible) are local dates in
    calendar order. `excluded` lists the days looked at and not used, with why.
    """

    method: str
    unadjusted: tuple[IntervalAverage, ...]
    adjusted: tuple[IntervalAverage, ...]
    days_used: tuple[date, ...] = ()
    days_considered: tuple[date, ...] = ()
    adjustment: Adjustment | None = None
    reason: str | None = None
    excluded: tuple[tuple[date, str], ...] = field(default=(), repr=False)
    fallbacks: tuple[tuple[str, str], ...] = ()
    """The settlement methods tried before this one, each with why it gave no baseline."""
    calendar: str | None = None
    """The holiday calendar the like days were chosen with (`CN`, `US-NY`, `none`)."""

    @property
    def ok(self) -> bool:
        """True when every interval of the adjusted profile has a value."""
        return bool(self.adjusted) and all(p.kw is not None for p in self.adjusted)


def _zone(tz: tzinfo | str) -> tzinfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _index(history: Iterable[IntervalAverage], step: timedelta) -> dict[datetime, float]:
    out: dict[datetime, float] = {}
    for i, p in enumerate(history):
        start = utc(p.start, f"history[{i}].start")
        if p.duration != step:
            raise ValueError(f"history[{i}].duration: {p.duration} is not the grid step {step}")
        if start in out:
            raise ValueError(f"history[{i}].start: duplicate interval {start.isoformat()}")
        if p.kw is not None:
            out[start] = p.kw
    return out


def _like_instant(slot: datetime, tz: tzinfo, event_day: date, day: date) -> datetime | None:
    """The UTC instant on `day` at the same local wall time as `slot` on `event_day`.

    `None` when that wall time does not exist on `day` (skipped by a DST change). In a
    repeated hour the first occurrence is taken.
    """
    local = slot.astimezone(tz)
    offset = (local.date() - event_day).days
    naive = datetime.combine(day + timedelta(days=offset), local.time())
    aware = naive.replace(tzinfo=tz, fold=0)
    if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        return None
    return aware.astimezone(UTC)


def _is_like_weekend(d: date, holidays: Collection[date], cal: DayCalendar | None) -> bool:
    if d in holidays:
        return True
    return d.weekday() >= 5 if cal is None else not cal.working(d)


def _day_kind(d: date, holidays: Collection[date], cal: DayCalendar | None) -> str:
    name = cal.holiday(d) if cal is not None else None
    if name:
        return f"holiday ({name})"
    if d in holidays:
        return "holiday"
    if d.weekday() >= 5:
        return "weekend" if cal is None or not cal.working(d) else "working weekend day"
    return "weekday" if cal is None or cal.working(d) else "non-working weekday"


def _mean(values: Iterable[float]) -> float:
    vals = list(values)
    return math.fsum(vals) / len(vals)


def _like_kind(event_day: date, holidays: Collection[date], cal: DayCalendar | None) -> str:
    weekend_like = _is_like_weekend(event_day, holidays, cal)
    if cal is None:
        return "weekend/holiday" if weekend_like else "weekday"
    return "non-working day" if weekend_like else "working day"


def _candidates(
    cfg: XofYConfig,
    event_day: date,
    holidays: Collection[date],
    event_days: Collection[date],
    cal: DayCalendar | None,
) -> Iterator[tuple[date, str | None]]:
    """The days before `event_day` within the look-back, newest first, each with why it is
    no like day of the event day (`None`: it is one, if its data are complete)."""
    weekend_like = _is_like_weekend(event_day, holidays, cal)
    kind = _like_kind(event_day, holidays, cal)
    for back in range(1, cfg.max_lookback_days + 1):
        day = event_day - timedelta(days=back)
        if day in event_days:
            yield day, "event day"
        elif weekend_like != _is_like_weekend(day, holidays, cal):
            yield day, f"{_day_kind(day, holidays, cal)}, not a like day of a {kind}"
        else:
            yield day, None


def like_days_span(
    config: XofYConfig,
    event_day: date,
    *,
    calendar: DayCalendar | None = None,
    holidays: Collection[date] = (),
    event_days: Collection[date] = (),
) -> int:
    """How many calendar days before `event_day` hold its `config.y` like days (weekends,
    holidays and `event_days` skipped as `x_of_y_baseline` does; at most the look-back):
    the metered history a site needs for this method."""
    found, oldest = 0, event_day
    for day, unlike in _candidates(config, event_day, set(holidays), set(event_days), calendar):
        oldest = day
        found += unlike is None
        if found == config.y:
            break
    return (event_day - oldest).days


def _adjustment_window(
    cfg: XofYConfig, ev_start: datetime, busy: Sequence[Busy], zone: tzinfo
) -> tuple[datetime, datetime, str | None, str | None]:
    """The day-of adjustment window `[start, end)`: `adjustment_window` long, ending
    `adjustment_gap` before the event, moved earlier past every busy span it meets; with
    why it moved, and why there is none (no free window within `ADJUSTMENT_REACH`)."""
    step = cfg.step
    a_end = floor_to(ev_start - cfg.adjustment_gap, step)
    a_start = floor_to(ev_start - cfg.adjustment_gap - cfg.adjustment_window, step)
    whys: list[str] = []
    busy = [b for b in busy if not (b.preparation and utc(b.start) <= a_start)]
    for _ in range(len(busy) + 1):  # each span moves the window at most once
        hit = [b for b in busy if utc(b.start) < a_end and utc(b.end) > a_start]
        if not hit:
            break
        first = min(hit, key=lambda b: utc(b.start))
        a_end = floor_to(utc(first.start), step)
        a_start = floor_to(a_end - cfg.adjustment_window, step)
        whys.append(first.why)
    if not whys:
        return a_start, a_end, None, None
    local = f"{a_start.astimezone(zone):%H:%M}–{a_end.astimezone(zone):%H:%M} local"
    if a_start < ev_start - ADJUSTMENT_REACH:
        reach = ADJUSTMENT_REACH.total_seconds() / 3600
        blocked = f"no window of usual operation in the {reach:g} h before the event (" + (
            "; ".join(whys) + "): not adjusted"
        )
        return a_start, a_end, None, blocked
    return a_start, a_end, f"window moved to {local}: " + "; ".join(whys), None


def x_of_y_baseline(
    history: Iterable[IntervalAverage],
    *,
    tz: tzinfo | str,
    event_start: datetime,
    event_end: datetime,
    config: XofYConfig | None = None,
    holidays: Collection[date] = (),
    event_days: Collection[date] = (),
    profile_end: datetime | None = None,
    calendar: DayCalendar | None = None,
    busy: Sequence[Busy] = (),
) -> BaselineResult:
    """X-of-Y like-day baseline with a capped day-of adjustment.

    `history`: the site's interval averages on the `config.step` grid (kW, import positive)
    for the past days and for the event day up to the event start. `tz`: the site's zone.
    `holidays` and `event_days` are local dates kept out of the pool (holidays are like days
    of a weekend event). With a `calendar`, like days are its working days (or its
    non-working days, for an event on one), so that holidays and worked weekend days are
    classed as the country does. The profile covers the event window, extended to `profile_end` when
    given (e.g. to measure rebound after the event). `busy`: spans the adjustment window is
    moved earlier past (see `Busy`); none within `ADJUSTMENT_REACH`: no adjustment, and why.
    """
    cfg = config or XofYConfig()
    zone = _zone(tz)
    step = cfg.step
    ev_start, ev_end = utc(event_start, "event_start"), utc(event_end, "event_end")
    if ev_end <= ev_start:
        raise ValueError("event_end: must be after event_start")
    p_start = floor_to(ev_start, step)
    p_end = ceil_to(max(ev_end, utc(profile_end, "profile_end") if profile_end else ev_end), step)
    profile_slots = grid(p_start, p_end, step)
    rank_slots = grid(p_start, ceil_to(ev_end, step), step)
    a_start, a_end, moved, blocked = _adjustment_window(cfg, ev_start, busy, zone)
    adj_slots = grid(a_start, a_end, step) if cfg.adjustment != "none" and not blocked else []
    needed = adj_slots + profile_slots

    values = _index(history, step)
    holiday_set, event_set = set(holidays), set(event_days)
    event_day = ev_start.astimezone(zone).date()
    kind = _like_kind(event_day, holiday_set, calendar)

    eligible: list[tuple[date, dict[datetime, float]]] = []
    excluded: list[tuple[date, str]] = []
    for day, unlike in _candidates(cfg, event_day, holiday_set, event_set, calendar):
        if len(eligible) == cfg.y:
            break
        if unlike is not None:
            excluded.append((day, unlike))
            continue
        row: dict[datetime, float] = {}
        why: str | None = None
        for slot in needed:
            inst = _like_instant(slot, zone, event_day, day)
            wall = slot.astimezone(zone).strftime("%H:%M")
            if inst is None:
                why = f"no {wall} local on this day (clock change)"
            elif inst not in values:
                why = f"missing data at {wall} local"
            else:
                row[slot] = values[inst]
                continue
            break
        if why is not None:
            excluded.append((day, why))
            continue
        eligible.append((day, row))

    method = cfg.label
    n = len(eligible)
    reason: str | None = None
    if n < cfg.y:
        reason = (
            f"only {n} eligible {kind} like days in the {cfg.max_lookback_days} days before "
            f"{event_day.isoformat()} (wanted {cfg.y})"
        )
    if n < cfg.min_days:
        return BaselineResult(
            method,
            (),
            (),
            days_considered=tuple(sorted(d for d, _ in eligible)),
            reason=f"{reason}; at least {cfg.min_days} needed: no baseline",
            excluded=tuple(excluded),
            calendar=calendar.label if calendar is not None else None,
        )
    x = min(cfg.x, n)
    if reason is not None:
        reason += f"; used the highest {x} of {n}"
    # Highest mean load over the event window first; ties go to the more recent day.
    ranked = sorted(range(n), key=lambda i: (-_mean(eligible[i][1][s] for s in rank_slots), i))
    chosen = sorted(ranked[:x])
    days = [eligible[i] for i in chosen]

    def base_at(slot: datetime) -> float:
        return _mean(row[slot] for _, row in days)

    base = [base_at(s) for s in profile_slots]
    adjustment = _adjust(cfg, values, adj_slots, base_at, a_start, a_end, zone, blocked)
    if adjustment is not None and moved is not None:
        adjustment = replace(adjustment, moved=moved)
    unadjusted = tuple(
        IntervalAverage(s, step, b) for s, b in zip(profile_slots, base, strict=True)
    )
    adjusted = tuple(
        IntervalAverage(s, step, _apply(adjustment, b))
        for s, b in zip(profile_slots, base, strict=True)
    )
    return BaselineResult(
        method,
        unadjusted,
        adjusted,
        days_used=tuple(sorted(d for d, _ in days)),
        days_considered=tuple(sorted(d for d, _ in eligible)),
        adjustment=adjustment,
        reason=reason,
        excluded=tuple(excluded),
        calendar=calendar.label if calendar is not None else None,
    )


def _apply(adj: Adjustment | None, kw: float) -> float:
    if adj is None:
        return kw
    return kw * adj.applied if adj.mode == "multiplicative" else kw + adj.applied


def _adjust(
    cfg: XofYConfig,
    values: dict[datetime, float],
    slots: list[datetime],
    base_at: Callable[[datetime], float],
    a_start: datetime,
    a_end: datetime,
    zone: tzinfo,
    blocked: str | None = None,
) -> Adjustment | None:
    if cfg.adjustment == "none":
        return None
    neutral = 1.0 if cfg.adjustment == "multiplicative" else 0.0

    def skipped(reason: str, actual: float | None, base: float | None) -> Adjustment:
        return Adjustment(
            cfg.adjustment, a_start, a_end, actual, base, None, neutral, False, reason
        )

    if blocked is not None:
        return skipped(blocked, None, None)
    if not slots:
        return skipped("empty adjustment window", None, None)
    base = _mean(base_at(s) for s in slots)
    absent = [s for s in slots if s not in values]
    if absent:
        wall = absent[0].astimezone(zone).strftime("%H:%M")
        return skipped(
            f"event-day data missing in the adjustment window ({len(absent)} intervals, "
            f"first at {wall} local): not adjusted",
            None,
            base,
        )
    actual = _mean(values[s] for s in slots)
    cap = cfg.adjustment_cap
    if cfg.adjustment == "multiplicative":
        if base <= 0:
            return skipped(
                f"baseline mean {base:.3f} kW in the adjustment window is not positive: "
                "no multiplicative adjustment",
                actual,
                base,
            )
        raw = actual / base
        applied = raw if cap is None else min(max(raw, 1.0 - cap), 1.0 + cap)
    else:
        raw = actual - base
        bound = None if cap is None else cap * abs(base)
        applied = raw if bound is None else min(max(raw, -bound), bound)
    return Adjustment(
        cfg.adjustment, a_start, a_end, actual, base, raw, applied, applied != raw, None
    )


def counterfactual_baseline(
    counterfactual: StepSeries,
    *,
    start: datetime,
    end: datetime,
    step: timedelta = DEFAULT_STEP,
) -> BaselineResult:
    """The baseline of a simulation: the same site's import run without the event.

    `counterfactual` is that run's site import (kW, consumption positive); the baseline is
    its interval averages on the `step` grid covering `[start, end)`. Intervals the run does
    not fully cover have `kw=None`, and `reason` says how many.
    """
    slots = grid(floor_to(start, step), ceil_to(end, step), step)
    profile = tuple(counterfactual.average(s, s + step) for s in slots)
    absent = [p for p in profile if p.kw is None]
    reason = None
    if absent:
        reason = (
            f"counterfactual run does not cover {len(absent)} of {len(profile)} intervals "
            f"(first at {absent[0].start.isoformat()})"
        )
    return BaselineResult("counterfactual", profile, profile, reason=reason)
