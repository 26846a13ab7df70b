"""X-of-Y like-day baseline and counterfactual baseline on hand-checkable histories."""

from __future__ import annotations

from datetime import UTC, date, time, timedelta

import pytest

from tests.measure.helpers import STEP, history, local
from vpp.measure.baseline import (
    Busy,
    XofYConfig,
    counterfactual_baseline,
    like_days_span,
    x_of_y_baseline,
)
from vpp.measure.calendar import DayCalendar
from vpp.measure.series import IntervalAverage, StepSeries

SH = "Asia/Shanghai"
WED = date(2026, 7, 15)  # a Wednesday
EV_START = local(SH, WED, 14)
EV_END = local(SH, WED, 16)


def weekdays_before(day: date, n: int, skip: frozenset[date] = frozenset()) -> list[date]:
    """The `n` most recent weekdays before `day`, newest first, leaving out `skip`."""
    out: list[date] = []
    d = day
    while len(out) < n:
        d -= timedelta(days=1)
        if d.weekday() < 5 and d not in skip:
            out.append(d)
    return out


def flat_then(
    event_day_kw: float, *, pre_event_hour_kw: float | None = None
) -> list[IntervalAverage]:
    """100 kW on every past day; on the event day `event_day_kw`, and optionally another
    value in the hour just before the event (13:00–14:00)."""

    def load(d: date, t: time) -> float:
        if d != WED:
            return 100.0
        if pre_event_hour_kw is not None and time(13) <= t < time(14):
            return pre_event_hour_kw
        return event_day_kw

    return history(SH, WED - timedelta(days=45), WED, load, until=EV_START)


def test_flat_history_gives_flat_baseline_from_ten_recent_weekdays() -> None:
    b = x_of_y_baseline(flat_then(100.0), tz=SH, event_start=EV_START, event_end=EV_END)
    assert b.ok and b.reason is None
    assert [p.kw for p in b.unadjusted] == [100.0] * 8
    assert [p.kw for p in b.adjusted] == [100.0] * 8
    assert b.adjusted[0].start == EV_START.astimezone(UTC)
    assert list(b.days_used) == sorted(weekdays_before(WED, 10))
    assert b.adjustment is not None and b.adjustment.applied == 1.0 and not b.adjustment.capped
    assert b.method == "x_of_y:10/10:multiplicative:cap=0.20"


def test_day_of_adjustment_within_cap() -> None:
    b = x_of_y_baseline(flat_then(110.0), tz=SH, event_start=EV_START, event_end=EV_END)
    adj = b.adjustment
    assert adj is not None
    assert adj.raw == pytest.approx(1.1) and adj.applied == pytest.approx(1.1)
    assert not adj.capped
    assert [p.kw for p in b.unadjusted] == [100.0] * 8
    assert [p.kw for p in b.adjusted] == pytest.approx([110.0] * 8)
    # The window is the 3 hours ending 1 hour before the event: 10:00–13:00 local.
    assert adj.window_start == local(SH, WED, 10).astimezone(UTC)
    assert adj.window_end == local(SH, WED, 13).astimezone(UTC)


def test_day_of_adjustment_hits_the_cap() -> None:
    b = x_of_y_baseline(flat_then(150.0), tz=SH, event_start=EV_START, event_end=EV_END)
    adj = b.adjustment
    assert adj is not None
    assert adj.raw == pytest.approx(1.5) and adj.applied == pytest.approx(1.2) and adj.capped
    assert [p.kw for p in b.adjusted] == pytest.approx([120.0] * 8)
    low = x_of_y_baseline(flat_then(50.0), tz=SH, event_start=EV_START, event_end=EV_END)
    assert low.adjustment is not None and low.adjustment.applied == pytest.approx(0.8)
    assert [p.kw for p in low.adjusted] == pytest.approx([80.0] * 8)


def test_additive_adjustment_and_its_cap() -> None:
    cfg = XofYConfig(adjustment="additive")
    b = x_of_y_baseline(flat_then(110.0), tz=SH, event_start=EV_START, event_end=EV_END, config=cfg)
    assert b.adjustment is not None and b.adjustment.applied == pytest.approx(10.0)
    assert [p.kw for p in b.adjusted] == pytest.approx([110.0] * 8)
    capped = x_of_y_baseline(
        flat_then(150.0), tz=SH, event_start=EV_START, event_end=EV_END, config=cfg
    )
    assert capped.adjustment is not None and capped.adjustment.capped
    assert [p.kw for p in capped.adjusted] == pytest.approx([120.0] * 8)  # +20 % of 100 kW


def test_hour_before_the_event_is_kept_out_of_the_adjustment() -> None:
    # Pre-cooling at 300 kW from 13:00 to 14:00 must not inflate the baseline.
    h = flat_then(110.0, pre_event_hour_kw=300.0)
    b = x_of_y_baseline(h, tz=SH, event_start=EV_START, event_end=EV_END)
    assert b.adjustment is not None and b.adjustment.applied == pytest.approx(1.1)
    no_gap = XofYConfig(adjustment_gap=timedelta(0), adjustment_cap=None)
    c = x_of_y_baseline(h, tz=SH, event_start=EV_START, event_end=EV_END, config=no_gap)
    # 11:00–14:00: two hours at 110 and one at 300 → 173.33 / 100.
    assert c.adjustment is not None and c.adjustment.applied == pytest.approx(520 / 300)


def test_missing_event_day_data_means_no_adjustment_with_a_reason() -> None:
    h = [
        p
        for p in flat_then(110.0)
        if not (p.start.astimezone(UTC).date() == WED and p.start.hour == 3)
    ]
    b = x_of_y_baseline(h, tz=SH, event_start=EV_START, event_end=EV_END)
    assert b.adjustment is not None and b.adjustment.applied == 1.0
    assert b.adjustment.reason is not None and "missing" in b.adjustment.reason
    assert [p.kw for p in b.adjusted] == [100.0] * 8


def earlier_event_then(event_day_kw: float) -> list[IntervalAverage]:
    """100 kW on every past day; on the event day `event_day_kw`, except 40 kW from 11:00
    to 13:00 local (an earlier event and its recovery)."""

    def load(d: date, t: time) -> float:
        if d != WED:
            return 100.0
        return 40.0 if time(11) <= t < time(13) else event_day_kw

    return history(SH, WED - timedelta(days=45), WED, load, until=EV_START)


def test_adjustment_window_moves_past_an_earlier_event() -> None:
    h = earlier_event_then(110.0)
    plain = x_of_y_baseline(h, tz=SH, event_start=EV_START, event_end=EV_END)
    # 10:00–13:00 holds the earlier event: 2 h at 40 kW and 1 h at 110 pull it to the cap.
    assert plain.adjustment is not None and plain.adjustment.applied == pytest.approx(0.8)
    busy = [Busy(local(SH, WED, 11), local(SH, WED, 13), "event e1 and its recovery")]
    b = x_of_y_baseline(h, tz=SH, event_start=EV_START, event_end=EV_END, busy=busy)
    adj = b.adjustment
    assert adj is not None and adj.applied == pytest.approx(1.1) and adj.reason is None
    assert adj.window_start == local(SH, WED, 8).astimezone(UTC)
    assert adj.window_end == local(SH, WED, 11).astimezone(UTC)
    assert adj.moved is not None
    assert "08:00–11:00" in adj.moved and "event e1 and its recovery" in adj.moved
    assert [p.kw for p in b.adjusted] == pytest.approx([110.0] * 8)


def test_adjustment_window_moves_past_each_busy_span_in_turn() -> None:
    h = earlier_event_then(110.0)
    busy = [
        Busy(local(SH, WED, 11), local(SH, WED, 13), "event e1 and its recovery"),
        Busy(local(SH, WED, 9, 30), local(SH, WED, 10), "event e0 and its recovery"),
    ]
    b = x_of_y_baseline(h, tz=SH, event_start=EV_START, event_end=EV_END, busy=busy)
    adj = b.adjustment
    assert adj is not None and adj.window_end == local(SH, WED, 9, 30).astimezone(UTC)
    assert adj.window_start == local(SH, WED, 6, 30).astimezone(UTC)
    assert adj.moved is not None and "e1" in adj.moved and "e0" in adj.moved


def test_no_free_adjustment_window_within_a_day_means_none_and_says_why() -> None:
    h = earlier_event_then(150.0)
    busy = [Busy(EV_START - timedelta(hours=26), EV_START, "the event was known from 12:00")]
    b = x_of_y_baseline(h, tz=SH, event_start=EV_START, event_end=EV_END, busy=busy)
    adj = b.adjustment
    assert adj is not None and adj.applied == 1.0 and adj.raw is None
    assert adj.reason is not None and "no window of usual operation" in adj.reason
    assert "known from 12:00" in adj.reason
    assert b.ok and [p.kw for p in b.adjusted] == [100.0] * 8


@pytest.mark.parametrize(
    ("calendar", "config", "days"),
    [
        # 10 weekdays before Wednesday 15 July 2026: back to Wednesday 1 July.
        (DayCalendar(), XofYConfig(), 14),
        # The US observe Independence Day on Friday 3 July: one more day.
        (DayCalendar("US"), XofYConfig(), 15),
        # France: Bastille Day, Tuesday 14 July, is no like day either.
        (DayCalendar("FR"), XofYConfig(), 15),
        (DayCalendar(), XofYConfig(x=5, y=5), 7),
    ],
)
def test_like_days_span_counts_the_calendar_days_holding_y_like_days(
    calendar: DayCalendar, config: XofYConfig, days: int
) -> None:
    assert like_days_span(config, WED, calendar=calendar) == days
    # With exactly that much history the baseline finds all its like days; one day less not.
    tz = "America/New_York" if calendar.country == "US" else SH
    start, end = local(tz, WED, 14), local(tz, WED, 16)
    for first, full in (
        (WED - timedelta(days=days), True),
        (WED - timedelta(days=days - 1), False),
    ):
        h = history(tz, first, WED, lambda d, t: 100.0, until=start)
        b = x_of_y_baseline(
            h, tz=tz, event_start=start, event_end=end, config=config, calendar=calendar
        )
        if full:
            assert len(b.days_used) == config.x and b.reason is None
        else:
            assert b.reason is not None and f"only {config.y - 1} eligible" in b.reason


def labelled(d: date, t: time) -> float:
    """A load that names its day: 100 + day of month, so the days used can be read back."""
    return 100.0 + d.day


def test_holidays_and_event_days_are_excluded() -> None:
    h = history(SH, WED - timedelta(days=45), WED, labelled, until=EV_START)
    holidays = frozenset({date(2026, 7, 13)})  # Monday
    events = frozenset({date(2026, 7, 14), date(2026, 7, 8)})
    b = x_of_y_baseline(
        h, tz=SH, event_start=EV_START, event_end=EV_END, holidays=holidays, event_days=events
    )
    expected = sorted(weekdays_before(WED, 10, skip=holidays | events))
    assert list(b.days_used) == expected
    assert not set(b.days_used) & (holidays | events)
    reasons = dict(b.excluded)
    assert reasons[date(2026, 7, 14)] == "event day"
    assert reasons[date(2026, 7, 13)].startswith("holiday")
    mean = sum(100.0 + d.day for d in expected) / 10
    assert [p.kw for p in b.unadjusted] == pytest.approx([mean] * 8)


def test_weekends_are_not_like_days_for_weekdays_and_vice_versa() -> None:
    h = history(SH, WED - timedelta(days=60), WED + timedelta(days=3), labelled)
    b = x_of_y_baseline(h, tz=SH, event_start=EV_START, event_end=EV_END)
    assert all(d.weekday() < 5 for d in b.days_used)
    assert "weekend, not a like day of a weekday" in dict(b.excluded).values()
    sat = date(2026, 7, 18)
    holiday = date(2026, 7, 10)  # a Friday: a like day of a weekend event
    w = x_of_y_baseline(
        h,
        tz=SH,
        event_start=local(SH, sat, 14),
        event_end=local(SH, sat, 16),
        holidays={holiday},
        config=XofYConfig(adjustment="none"),
    )
    assert all(d.weekday() >= 5 or d == holiday for d in w.days_used)
    assert holiday in w.days_used and len(w.days_used) == 10


def test_not_enough_days_falls_back_and_says_so() -> None:
    h = history(SH, WED - timedelta(days=6), WED, lambda d, t: 100.0, until=EV_START)
    b = x_of_y_baseline(h, tz=SH, event_start=EV_START, event_end=EV_END)
    # Thu 9 .. Tue 14 July: 4 weekdays.
    assert b.ok and len(b.days_used) == 4
    assert b.reason == (
        "only 4 eligible weekday like days in the 45 days before 2026-07-15 (wanted 10); "
        "used the highest 4 of 4"
    )
    none = x_of_y_baseline(
        h, tz=SH, event_start=EV_START, event_end=EV_END, config=XofYConfig(min_days=5)
    )
    assert not none.ok and none.adjusted == ()
    assert none.reason is not None and none.reason.endswith("at least 5 needed: no baseline")


def test_day_with_missing_data_is_left_out() -> None:
    def load(d: date, t: time) -> float | None:
        return None if d == date(2026, 7, 14) and t == time(15, 15) else 100.0

    h = history(SH, WED - timedelta(days=45), WED, load, until=EV_START)
    b = x_of_y_baseline(h, tz=SH, event_start=EV_START, event_end=EV_END)
    assert date(2026, 7, 14) not in b.days_used and len(b.days_used) == 10
    assert dict(b.excluded)[date(2026, 7, 14)] == "missing data at 15:15 local"


def test_high_x_of_y_takes_the_highest_days() -> None:
    h = history(SH, WED - timedelta(days=10), WED, labelled, until=EV_START)
    cfg = XofYConfig(x=4, y=5, adjustment="none")
    b = x_of_y_baseline(h, tz=SH, event_start=EV_START, event_end=EV_END, config=cfg)
    # The 5 most recent weekdays are 8, 9, 10, 13, 14 July; the lowest (8th) is dropped.
    assert list(b.days_used) == [date(2026, 7, d) for d in (9, 10, 13, 14)]
    assert [p.kw for p in b.adjusted] == pytest.approx([100 + (9 + 10 + 13 + 14) / 4] * 8)
    assert b.adjustment is None


def day_shape(d: date, t: time) -> float:
    """100 kW in office hours 09:00–18:00 local, 50 kW otherwise."""
    return 100.0 if time(9) <= t < time(18) else 50.0


@pytest.mark.parametrize(
    ("tz", "day"),
    [
        ("Asia/Shanghai", WED),
        ("Europe/Berlin", date(2026, 3, 30)),  # the Monday after summer time starts
        ("Europe/Berlin", date(2026, 10, 26)),  # the Monday after summer time ends
    ],
)
def test_like_days_follow_local_wall_time(tz: str, day: date) -> None:
    h = history(tz, day - timedelta(days=45), day, day_shape, until=local(tz, day, 17))
    b = x_of_y_baseline(h, tz=tz, event_start=local(tz, day, 17), event_end=local(tz, day, 19))
    assert [p.kw for p in b.adjusted] == [100.0] * 4 + [50.0] * 4
    assert b.adjustment is not None and b.adjustment.applied == 1.0
    assert len(b.days_used) == 10


def test_berlin_event_on_the_dst_day_itself() -> None:
    tz = "Europe/Berlin"
    sun = date(2026, 3, 29)
    h = history(tz, sun - timedelta(days=60), sun, day_shape, until=local(tz, sun, 17))
    b = x_of_y_baseline(h, tz=tz, event_start=local(tz, sun, 17), event_end=local(tz, sun, 19))
    assert all(d.weekday() >= 5 for d in b.days_used)
    assert [p.kw for p in b.adjusted] == [100.0] * 4 + [50.0] * 4


def test_profile_can_extend_past_the_event_for_rebound() -> None:
    b = x_of_y_baseline(
        flat_then(100.0),
        tz=SH,
        event_start=EV_START,
        event_end=EV_END,
        profile_end=EV_END + timedelta(hours=2),
    )
    assert len(b.adjusted) == 16


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="x: must be between"):
        XofYConfig(x=11, y=10)
    with pytest.raises(ValueError, match="adjustment_cap"):
        XofYConfig(adjustment_cap=1.5)
    with pytest.raises(ValueError, match=r"history\[0\]\.duration"):
        x_of_y_baseline(
            [IntervalAverage(EV_START, timedelta(minutes=5), 1.0)],
            tz=SH,
            event_start=EV_START,
            event_end=EV_END,
        )


def test_counterfactual_is_the_run_without_the_event_on_the_grid() -> None:
    t0 = EV_START.astimezone(UTC)
    run = StepSeries(
        [(t0 + k * timedelta(minutes=5), 90.0 + k) for k in range(12)],
        max_hold=timedelta(minutes=5),
    )
    b = counterfactual_baseline(run, start=t0, end=t0 + timedelta(hours=1))
    assert b.method == "counterfactual"
    assert [p.kw for p in b.adjusted] == pytest.approx([91.0, 94.0, 97.0, 100.0])
    assert b.unadjusted == b.adjusted and b.reason is None
    short = counterfactual_baseline(run, start=t0, end=t0 + timedelta(hours=2))
    assert not short.ok and short.reason is not None and "4 of 8" in short.reason
    assert STEP == timedelta(minutes=15)


def test_adjustment_window_reaching_into_the_previous_day() -> None:
    # Event at 03:00: the window 23:00–02:00 starts on Tuesday (100 kW) and ends on the event
    # day (110 kW from midnight): (100 + 110 + 110) / 3 against like days at 100 kW.
    start = local(SH, WED, 3)
    h = history(
        SH, WED - timedelta(days=45), WED, lambda d, t: 110.0 if d == WED else 100.0, until=start
    )
    b = x_of_y_baseline(h, tz=SH, event_start=start, event_end=start + timedelta(hours=1))
    assert b.adjustment is not None
    assert b.adjustment.window_start == local(SH, WED - timedelta(days=1), 23).astimezone(UTC)
    assert b.adjustment.applied == pytest.approx(320 / 300)
    assert [p.kw for p in b.adjusted] == pytest.approx([320 / 3] * 4)


def test_like_day_without_the_wall_time_is_left_out() -> None:
    # 02:00–03:00 does not exist in Berlin on Sunday 29 March 2026 (clocks jump to 03:00).
    tz = "Europe/Berlin"
    sun = date(2026, 4, 5)
    h = history(tz, sun - timedelta(days=60), sun, day_shape, until=local(tz, sun, 2))
    b = x_of_y_baseline(
        h,
        tz=tz,
        event_start=local(tz, sun, 2),
        event_end=local(tz, sun, 3),
        config=XofYConfig(adjustment="none"),
    )
    assert date(2026, 3, 29) not in b.days_used
    assert dict(b.excluded)[date(2026, 3, 29)] == "no 02:00 local on this day (clock change)"
    assert len(b.days_used) == 10 and [p.kw for p in b.adjusted] == [50.0] * 4
