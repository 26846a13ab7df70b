"""The settlement baseline of an event: the program's method over the metered history, with
its fallback chain, and never the agent's own plan.

`settlement_baseline` picks the method (`ProgramSettlement.short_notice` for an event sent
less than `short_notice_min` before its start, else `baseline`), runs it on the site's
metered import, and tries the `fallback` methods in order while a method makes no baseline.
The result says which method made it (`method`), the methods that fell back and why
(`fallbacks`), the days used and the adjustment; with no method left it is empty, with
method `none` and the reasons.

`event_busy` names the spans the day-of adjustment must not be taken from (the event's own
preparation once it was known, other events and their recovery); `history_days_needed` how
many days of metered history a program's like days take (a replay's `history_days`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta, tzinfo

from vpp.measure.baseline import BaselineResult, Busy, like_days_span, x_of_y_baseline
from vpp.measure.calendar import DayCalendar
from vpp.measure.programs import PreEventMethod, ProgramSettlement, XofYMethod
from vpp.measure.series import DEFAULT_STEP, IntervalAverage, StepSeries, ceil_to, floor_to, grid

HISTORY_DAYS = 46
"""How far back the like days are looked for by default (the longest default look-back + 1)."""
RECOVERY = timedelta(hours=2)
"""After an event the site recovers (zones back to their setpoints, the battery refilled):
this long is kept out of another event's day-of adjustment window."""


def event_busy(
    received: datetime | None,
    start: datetime,
    others: Iterable[tuple[str, datetime | None, datetime, datetime]] = (),
    *,
    tz: tzinfo,
) -> list[Busy]:
    """The spans in which the site ran otherwise than usual before an event starting at
    `start`: from its receipt (`received`; the plan may pre-cool or pre-charge from then)
    to its start, a `preparation` span; each other event (`others`: id, received, start,
    end) from its start to `RECOVERY` after its end, and its preparation likewise; an other
    event neither known nor begun before `start` is left out (it cannot show before it)."""
    out: list[Busy] = []
    if received is not None and received < start:
        known = f"the event was known from {received.astimezone(tz):%H:%M}"
        out.append(Busy(received, start, known, preparation=True))
    for event_id, got, s, e in others:
        if min(got or s, s) >= start:
            continue
        out.append(Busy(s, e + RECOVERY, f"event {event_id} and its recovery"))
        if got is not None and got < s:
            known = f"event {event_id} was known from {got.astimezone(tz):%H:%M}"
            out.append(Busy(got, s, known, preparation=True))
    return out


def history_days_needed(
    program: ProgramSettlement,
    event_day: date,
    *,
    calendar: DayCalendar,
    event_days: Collection[date] = (),
) -> int:
    """Calendar days of metered history before `event_day` that hold the like days of every
    like-day method of `program` (weekends, public holidays, `event_days` skipped), plus the
    day before the oldest (an adjustment window or an interval past midnight): 15 for a
    10-of-10 on a Wednesday with a holiday in the fortnight before. 0 for a program without
    like days."""
    spans = [
        like_days_span(m.config(), event_day, calendar=calendar, event_days=event_days) + 1
        for m in (program.baseline, program.short_notice, *program.fallback)
        if isinstance(m, XofYMethod)
    ]
    return max(spans, default=0)


def pre_event_mean_baseline(
    meter: StepSeries,
    *,
    event_start: datetime,
    profile_end: datetime,
    method: PreEventMethod,
    step: timedelta = DEFAULT_STEP,
) -> BaselineResult:
    """The mean import over the `method.minutes` before the event (ending `gap_minutes` before
    it), held flat from the event start to `profile_end` on the `step` grid."""
    end = event_start - timedelta(minutes=method.gap_minutes)
    start = end - timedelta(minutes=method.minutes)
    mean = meter.average(start, end, min_coverage=method.min_coverage)
    if mean.kw is None:
        return BaselineResult(
            method.label,
            (),
            (),
            reason=(
                f"the site meter covers {mean.coverage:.0%} of the {method.minutes} min before "
                f"the event (needs {method.min_coverage:.0%})"
            ),
        )
    slots = grid(floor_to(event_start, step), ceil_to(profile_end, step), step)
    profile = tuple(IntervalAverage(s, step, mean.kw) for s in slots)
    partial = None
    if mean.coverage < 1.0:
        partial = (
            f"the site meter covers {mean.coverage:.0%} of the {method.minutes} min before "
            "the event: the mean of that part"
        )
    return BaselineResult(method.label, profile, profile, reason=partial)


def _x_of_y(
    meter: StepSeries,
    method: XofYMethod,
    *,
    tz: tzinfo,
    event_start: datetime,
    event_end: datetime,
    profile_end: datetime,
    calendar: DayCalendar,
    event_days: Collection[date],
    busy: Sequence[Busy],
) -> BaselineResult:
    cfg = method.config()
    since = floor_to(event_start - timedelta(days=cfg.max_lookback_days + 1), timedelta(days=1))
    history = [
        h
        for h in meter.on_grid(since, floor_to(event_start, cfg.step), min_coverage=0.9)
        if h.kw is not None
    ]
    if not history:
        return BaselineResult(method.label, (), (), reason="no metered history before the event")
    return x_of_y_baseline(
        history,
        tz=tz,
        event_start=event_start,
        event_end=event_end,
        config=cfg,
        event_days=event_days,
        profile_end=profile_end,
        calendar=calendar,
        busy=busy,
    )


def settlement_baseline(
    meter: StepSeries,
    program: ProgramSettlement,
    *,
    tz: tzinfo,
    event_start: datetime,
    event_end: datetime,
    calendar: DayCalendar,
    event_days: Collection[date] = (),
    notice: timedelta | None = None,
    profile_end: datetime | None = None,
    busy: Sequence[Busy] = (),
) -> BaselineResult:
    """The event's settlement baseline from the site's metered import `meter` (kW, import
    positive; history before the event day and the event day up to its start).

    `event_days`: local dates of past DR events, kept out of the like days. `notice`: how
    long before its start the event was sent (`None`: unknown, not short notice). `busy`:
    spans kept out of the day-of adjustment window (`event_busy`).
    """
    end = profile_end if profile_end is not None else event_end
    chosen: list[tuple[XofYMethod | PreEventMethod, str | None]] = []
    limit = program.short_notice_min
    if limit is not None and notice is not None and notice < timedelta(minutes=limit):
        short = (
            f"short notice: sent {notice.total_seconds() / 60:.0f} min before the start "
            f"(under {limit:g} min)"
        )
        chosen.append((program.short_notice, short))
    else:
        chosen.append((program.baseline, None))
    chosen += [(m, None) for m in program.fallback]
    fallbacks: list[tuple[str, str]] = []
    for method, why in chosen:
        if isinstance(method, XofYMethod):
            result = _x_of_y(
                meter,
                method,
                tz=tz,
                event_start=event_start,
                event_end=event_end,
                profile_end=end,
                calendar=calendar,
                event_days=event_days,
                busy=busy,
            )
        else:
            result = pre_event_mean_baseline(
                meter, event_start=event_start, profile_end=end, method=method
            )
        if result.ok:
            reasons = [r for r in (why, result.reason) if r]
            if fallbacks:
                reasons.insert(0, "fell back from " + "; ".join(f"{m}: {r}" for m, r in fallbacks))
            return replace(
                result,
                reason="; ".join(reasons) or None,
                fallbacks=tuple(fallbacks),
                calendar=calendar.label,
            )
        fallbacks.append((method.label, result.reason or "no baseline"))
    return BaselineResult(
        "none",
        (),
        (),
        reason="no settlement method made a baseline: "
        + "; ".join(f"{m}: {r}" for m, r in fallbacks),
        fallbacks=tuple(fallbacks),
        calendar=calendar.label,
    )
