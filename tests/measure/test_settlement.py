"""Settlement baselines: the agent's reports state the program's method over the store's
metered history (never the agent's plan), leave out past event days and public holidays,
and fall back with the reason stated.

Store-level: a generated site file, real meter telemetry rows in a real SQLite store, real
events handled by the agent's EventManager, and the agent's Reporter making the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from devices.clock import VirtualClock
from tests.grid.helpers import event_dict, interval, payload
from vpp.control.dispatcher import Dispatcher
from vpp.dr.events import EventManager
from vpp.dr.reporting import Reporter, event_spec
from vpp.measure import StepSeries, build_report
from vpp.measure.baseline import BaselineResult
from vpp.measure.calendar import DayCalendar, country_of_zone
from vpp.measure.programs import ProgramSettlement, SettlementConfig, XofYMethod
from vpp.measure.series import IntervalAverage
from vpp.measure.settlement import history_days_needed, settlement_baseline
from vpp.mqtt_link import MqttLink
from vpp.site import BrokerConfig, SiteError, load_site
from vpp.store.store import Store

TZ = ZoneInfo("Asia/Shanghai")
EVENT_DAY = date(2026, 6, 26)  # a Friday; 19 June is the Dragon Boat Festival (a Friday)
PAST_EVENT_DAY = date(2026, 6, 24)
REQUEST_KW = 100.0


def write_site(tmp_path: Path, settlement: dict[str, Any] | None = None) -> Path:
    """A site file a generator could write: a meter and the settlement section given."""
    raw: dict[str, Any] = {
        "site_id": "settle-1",
        "timezone": "Asia/Shanghai",
        "grid": {"extensions": True},
        "store": {"telemetry_resolution_s": 60},
        "devices": [{"id": "meter", "type": "meter", "profile": "site-meter", "port": 0}],
    }
    if settlement is not None:
        raw["settlement"] = settlement
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def local(d: date, hour: float) -> datetime:
    return datetime.combine(d, datetime.min.time(), TZ) + timedelta(hours=hour)


def working_load(t: datetime) -> float:
    """A working day's import (kW): 150 at night, up to 350 at 15:00 local."""
    h = t.astimezone(TZ).hour + t.astimezone(TZ).minute / 60
    return 150.0 + 200.0 * max(0.0, math.sin(math.pi * (h - 6) / 18))


def day_load(d: date) -> Callable[[datetime], float]:
    """What each past day drew: working days the shape, weekends 120 kW, the holiday 60 kW,
    the past event day 100 kW less from 14:00 to 16:00."""
    if d == date(2026, 6, 19):
        return lambda t: 60.0
    if d.weekday() >= 5:
        return lambda t: 120.0
    if d == PAST_EVENT_DAY:
        return lambda t: working_load(t) - (100.0 if 14 <= t.astimezone(TZ).hour < 16 else 0)
    return working_load


def counterfactual(t: datetime) -> float:
    """The event day without the event: the working-day shape, 5 % up (a hotter day)."""
    return 1.05 * working_load(t)


def delivered(t: datetime) -> float:
    """What the site shed in the event (14:00-16:00 local): 90 of the 100 kW asked."""
    return 90.0 if 14 <= t.astimezone(TZ).hour < 16 else 0.0


def fill(store: Store, start: datetime, end: datetime, kw: Callable[[datetime], float]) -> None:
    """Meter telemetry every minute in [start, end) (the agent's 60-s windows)."""
    t = start
    with store.batch():
        while t < end:
            store.add_telemetry(t, "meter", {"import_power_kw": kw(t)})
            t += timedelta(minutes=1)
        store.flush()


def event_payload(event_id: str, day: date, program: str | None = "summer-peak") -> bytes:
    ivs = [interval(local(day, 14 + k / 4).isoformat(), "PT15M", REQUEST_KW) for k in range(8)]
    return payload(event_dict(event_id=event_id, intervals=ivs, program=program))


class Site:
    """The agent's parts that report: store, clock, event manager, reporter. `history` days
    of meter telemetry and `past_events` (handled on their day, then completed) are stored
    before the agent starts at local midnight of the event day."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        history: int,
        past_events: tuple[date, ...] = (),
        settlement: dict[str, Any] | None = None,
    ) -> None:
        self.site = load_site(write_site(tmp_path, settlement))
        self.store = Store(tmp_path / "store.sqlite")
        for k in range(history, 0, -1):
            d = EVENT_DAY - timedelta(days=k)
            fill(self.store, local(d, 0), local(d + timedelta(days=1), 0), day_load(d))
        for i, d in enumerate(past_events):
            clock = VirtualClock(local(d, 1).astimezone(UTC))
            EventManager(clock, self.store, self.link(clock)).handle(event_payload(f"past-{i}", d))
            self.store.set_event_status(local(d, 17), f"past-{i}", "completed")
        self.clock = VirtualClock(local(EVENT_DAY, 0).astimezone(UTC))
        link = self.link(self.clock)
        self.events = EventManager(self.clock, self.store, link)
        self.reporter = Reporter(
            self.site, self.clock, self.store, link, self.events, Dispatcher(self.site)
        )

    def link(self, clock: VirtualClock) -> MqttLink:
        return MqttLink(BrokerConfig(), self.site.id, clock, subscriptions=[])  # queues only

    def event_day(self, end_hour: float = 16) -> None:
        """The event day metered to `end_hour`: the counterfactual less what was shed."""
        fill(
            self.store,
            local(EVENT_DAY, 0),
            local(EVENT_DAY, end_hour),
            lambda t: counterfactual(t) - delivered(t),
        )

    def report(self, event_id: str) -> dict[str, Any]:
        ev = self.events.states[event_id].event
        return self.reporter.report(ev, ev.end)


def measured_ratio(rep: dict[str, Any]) -> float:
    """Delivery against the counterfactual, over the report's intervals."""
    return sum(
        counterfactual(datetime.fromisoformat(iv["start"]) + timedelta(minutes=7.5))
        - iv["actual_kw"]
        for iv in rep["intervals"]
    ) / (REQUEST_KW * len(rep["intervals"]))


def flat(profile: dict[datetime, float]) -> BaselineResult:
    prof = tuple(IntervalAverage(t, timedelta(minutes=15), kw) for t, kw in sorted(profile.items()))
    return BaselineResult("plan", prof, prof)


def test_report_states_the_like_day_baseline_not_the_plan(tmp_path: Path) -> None:
    """16 days of history with the Dragon Boat holiday and a past event day among them; the
    agent's plan said 241 kW flat. The report's baseline is 10-of-10 over the other working
    days, adjusted to the day: within 10 % of the request of the counterfactual."""
    s = Site(tmp_path, history=16, past_events=(PAST_EVENT_DAY,))
    s.events.handle(event_payload("ev-1", EVENT_DAY))  # received at 00:00, day-ahead
    s.event_day()
    plan = {local(EVENT_DAY, 14 + k / 4).astimezone(UTC): 241.0 for k in range(8)}
    s.reporter.methods["ev-1"] = "min(x_of_y:10/10,forecast)"
    s.reporter.save_baseline("ev-1", plan)  # the control baseline, from the plan
    rep = s.report("ev-1")

    measured = measured_ratio(rep)
    assert measured == pytest.approx(0.9, abs=1e-3)
    assert abs(rep["delivered_ratio"] - measured) <= 0.10, rep["delivered_ratio"]
    assert rep["baseline_method"] == "x_of_y:10/10:multiplicative:cap=0.20"
    b = rep["details"]["baseline"]
    assert b["method"] == rep["baseline_method"] and b["calendar"] == "CN"
    used = [date.fromisoformat(d) for d in b["days_used"]]
    assert len(used) == 10 and all(d.weekday() < 5 for d in used)
    assert date(2026, 6, 19) not in used and PAST_EVENT_DAY not in used
    why = {e["day"]: e["why"] for e in b["days_excluded"]}
    assert why["2026-06-24"] == "event day"
    assert why["2026-06-19"].startswith("holiday (Dragon Boat Festival)")
    assert b["adjustment"]["applied"] == pytest.approx(1.05, abs=1e-3)
    assert b["fallbacks"] == [] and b["reason"] is None

    # Against the plan's baseline (what the report used before) the same day is far off.
    ev = s.events.states["ev-1"].event
    old = build_report(
        event_spec(ev),
        baseline=flat(plan),
        site=s.reporter.meter_series(local(EVENT_DAY, 10), local(EVENT_DAY, 16)),
    )
    assert old.delivered_ratio is not None and abs(old.delivered_ratio - measured) > 0.10


def test_too_short_history_falls_back_with_the_reason_stated(tmp_path: Path) -> None:
    """Three days of history: 10-of-10 (at least 5 like days) cannot be made; the report says
    so and uses the program's fallback, the mean of the hour before the event."""
    s = Site(tmp_path, history=3)
    s.events.handle(event_payload("ev-1", EVENT_DAY))
    s.event_day()
    rep = s.report("ev-1")
    assert rep["baseline_method"] == "pre_event_mean:60min"
    b = rep["details"]["baseline"]
    assert b["method"] == "pre_event_mean:60min" and b["days_used"] == []
    [fb] = b["fallbacks"]
    assert fb["method"] == "x_of_y:10/10:multiplicative:cap=0.20"
    assert "only 3 eligible working day like days" in fb["reason"], fb
    assert "no baseline" in fb["reason"]
    assert b["reason"].startswith("fell back from x_of_y:10/10"), b["reason"]
    assert any(n.startswith("baseline: fell back") for n in rep["details"]["notes"])
    # The flat level is the metered mean of 13:00-14:00 on the event day.
    want = sum(counterfactual(local(EVENT_DAY, 13 + m / 60)) for m in range(60)) / 60
    assert [iv["baseline_kw"] for iv in rep["intervals"]] == [pytest.approx(want, abs=1e-3)] * 8


def test_no_method_left_says_so(tmp_path: Path) -> None:
    """No history and no meter data before the event: no baseline, method `none`, and why."""
    s = Site(tmp_path, history=0)
    s.events.handle(event_payload("ev-1", EVENT_DAY))
    fill(s.store, local(EVENT_DAY, 14), local(EVENT_DAY, 16), lambda t: 200.0)
    rep = s.report("ev-1")
    assert rep["baseline_method"] == "none" and rep["delivered_ratio"] is None
    reason = rep["details"]["baseline"]["reason"]
    assert reason.startswith("no settlement method made a baseline")
    assert "pre_event_mean:60min: the site meter covers 0% of the 60 min" in reason
    assert all(iv["baseline_kw"] is None for iv in rep["intervals"])


def test_short_notice_event_uses_the_programs_short_notice_method(tmp_path: Path) -> None:
    """Program `fast` settles events sent under 30 min ahead on the 30 min before them; the
    day-ahead program of the same site keeps its like days (5 of 5 working days, no
    adjustment, as in Jiangsu)."""
    settlement = {
        "default": {"baseline": {"method": "x_of_y", "x": 5, "y": 5, "adjustment": "none"}},
        "programs": {
            "fast": {
                "short_notice_min": 30,
                "short_notice": {"method": "pre_event_mean", "minutes": 30},
            }
        },
    }
    s = Site(tmp_path, history=10, settlement=settlement)
    s.event_day(13.75)
    s.clock = VirtualClock(local(EVENT_DAY, 13.75).astimezone(UTC))
    link = s.link(s.clock)
    s.events = EventManager(s.clock, s.store, link)
    s.reporter = Reporter(s.site, s.clock, s.store, link, s.events, Dispatcher(s.site))
    s.events.handle(event_payload("fast-1", EVENT_DAY, program="fast"))  # 15 min ahead
    s.events.handle(event_payload("day-1", EVENT_DAY, program="other"))
    fill(s.store, local(EVENT_DAY, 13.75), local(EVENT_DAY, 16), lambda t: 180.0)

    fast = s.report("fast-1")
    assert fast["baseline_method"] == "pre_event_mean:30min"
    reason = fast["details"]["baseline"]["reason"]
    assert reason == "short notice: sent 15 min before the start (under 30 min)"
    day = s.report("day-1")
    assert day["baseline_method"] == "x_of_y:5/5:none"
    used = day["details"]["baseline"]["days_used"]
    assert used == ["2026-06-18", "2026-06-22", "2026-06-23", "2026-06-24", "2026-06-25"]
    assert day["details"]["baseline"]["adjustment"] is None


def morning_payload(event_id: str) -> bytes:
    """A 100 kW curtailment from 10:00 to 12:00 local on the event day."""
    ivs = [
        interval(local(EVENT_DAY, 10 + k / 4).isoformat(), "PT15M", REQUEST_KW) for k in range(8)
    ]
    return payload(event_dict(event_id=event_id, intervals=ivs, program="summer-peak"))


def test_adjustment_skips_an_earlier_event_of_the_day_and_its_recovery(tmp_path: Path) -> None:
    """Two curtailments sent the day before (10:00-12:00, 14:00-16:00): the afternoon's
    default window (10:00-13:00) holds the morning's shed and its rebound. The report moves
    it to 07:00-10:00 and says so; on the default window it would be more than 10 % of the
    request off the counterfactual."""
    s = Site(tmp_path, history=16, past_events=(PAST_EVENT_DAY,))
    s.events.handle(morning_payload("ev-0"))
    s.events.handle(event_payload("ev-1", EVENT_DAY))

    def metered(t: datetime) -> float:
        h = t.astimezone(TZ).hour
        shed = 100.0 if 10 <= h < 12 else (-40.0 if h == 12 else 0.0)  # the rebound at 12:00
        return counterfactual(t) - delivered(t) - shed

    fill(s.store, local(EVENT_DAY, 0), local(EVENT_DAY, 16), metered)
    rep = s.report("ev-1")
    adj = rep["details"]["baseline"]["adjustment"]
    assert adj["window_start"] == local(EVENT_DAY, 7).astimezone(UTC).isoformat()
    assert adj["window_end"] == local(EVENT_DAY, 10).astimezone(UTC).isoformat()
    assert adj["applied"] == pytest.approx(1.05, abs=1e-3) and adj["reason"] is None
    assert "event ev-0 and its recovery" in adj["moved"], adj
    assert any("window moved to 07:00–10:00" in n for n in rep["details"]["notes"])
    measured = measured_ratio(rep)
    assert abs(rep["delivered_ratio"] - measured) <= 0.10, (rep["delivered_ratio"], measured)

    ev = s.events.states["ev-1"].event
    plain = settlement_baseline(
        s.reporter.meter_series(local(EVENT_DAY, 0) - timedelta(days=47), ev.start),
        SettlementConfig().default,
        tz=TZ,
        event_start=ev.start,
        event_end=ev.end,
        calendar=DayCalendar("CN"),
    )
    old = build_report(
        event_spec(ev),
        baseline=plain,
        site=s.reporter.meter_series(local(EVENT_DAY, 10), local(EVENT_DAY, 16)),
    )
    assert old.delivered_ratio is not None and abs(old.delivered_ratio - measured) > 0.10


def test_short_notice_adjustment_ends_when_the_event_was_known(tmp_path: Path) -> None:
    """A curtailment sent at 12:30 for 14:00: the plan pre-cools from 12:30 (150 kW more to
    13:00, inside the default window 10:00-13:00). The window ends at the receipt
    (09:30-12:30) and the report says why."""
    s = Site(tmp_path, history=16, past_events=(PAST_EVENT_DAY,))

    def metered(t: datetime) -> float:
        pre = 150.0 if local(EVENT_DAY, 12.5) <= t < local(EVENT_DAY, 14) else 0.0
        return counterfactual(t) - delivered(t) + pre

    fill(s.store, local(EVENT_DAY, 0), local(EVENT_DAY, 12.5), metered)
    s.clock = VirtualClock(local(EVENT_DAY, 12.5).astimezone(UTC))
    link = s.link(s.clock)
    s.events = EventManager(s.clock, s.store, link)
    s.reporter = Reporter(s.site, s.clock, s.store, link, s.events, Dispatcher(s.site))
    s.events.handle(event_payload("ev-1", EVENT_DAY))
    fill(s.store, local(EVENT_DAY, 12.5), local(EVENT_DAY, 16), metered)
    rep = s.report("ev-1")
    adj = rep["details"]["baseline"]["adjustment"]
    assert adj["window_start"] == local(EVENT_DAY, 9.5).astimezone(UTC).isoformat()
    assert adj["window_end"] == local(EVENT_DAY, 12.5).astimezone(UTC).isoformat()
    assert adj["applied"] == pytest.approx(1.05, abs=1e-3)
    assert "the event was known from 12:30" in adj["moved"], adj
    assert abs(rep["delivered_ratio"] - measured_ratio(rep)) <= 0.01


def test_history_days_needed_counts_like_days_in_the_sites_calendar() -> None:
    """10-of-10 before Friday 26 June 2026 in China skips the weekends and the Dragon Boat
    Festival (19 June): like days back to 11 June, 15 days, plus the day before for the
    adjustment window. A program without like days needs none."""
    cn = DayCalendar("CN")
    assert history_days_needed(ProgramSettlement(), EVENT_DAY, calendar=cn) == 16
    assert history_days_needed(ProgramSettlement(), EVENT_DAY, calendar=DayCalendar()) == 15
    five = ProgramSettlement(baseline=XofYMethod(method="x_of_y", x=5, y=5))
    assert history_days_needed(five, EVENT_DAY, calendar=cn) == 9  # back to 18 June
    pre = ProgramSettlement.model_validate({"baseline": {"method": "pre_event_mean"}})
    assert history_days_needed(pre, EVENT_DAY, calendar=cn) == 0
    past = history_days_needed(
        ProgramSettlement(), EVENT_DAY, calendar=cn, event_days={PAST_EVENT_DAY}
    )
    assert past == 17


def _series(days: int, kw_of: Callable[[date], float], today_kw: float) -> StepSeries:
    samples = []
    for k in range(days, 0, -1):
        d = EVENT_DAY - timedelta(days=k)
        for q in range(96):
            samples.append((local(d, q / 4), kw_of(d)))
    for q in range(56):  # the event day to 14:00
        samples.append((local(EVENT_DAY, q / 4), today_kw))
    return StepSeries(samples, max_hold=timedelta(minutes=15))


def test_high_5_of_10_and_a_capped_additive_adjustment() -> None:
    """High 5 of 10: the five working days with the highest event-window load; an additive
    day-of adjustment capped at 10 % of the baseline's window mean."""
    level = {EVENT_DAY - timedelta(days=k): 100.0 + 10 * k for k in range(1, 20)}
    method = XofYMethod(method="x_of_y", x=5, y=10, adjustment="additive", adjustment_cap=0.1)
    cal = DayCalendar("CN")
    b = settlement_baseline(
        _series(19, lambda d: level[d], today_kw=300.0),
        ProgramSettlement(baseline=method),
        tz=TZ,
        event_start=local(EVENT_DAY, 14),
        event_end=local(EVENT_DAY, 16),
        calendar=cal,
    )
    considered = sorted(d for d in level if cal.working(d))[-10:]
    top5 = sorted(considered, key=lambda d: -level[d])[:5]
    assert list(b.days_considered) == considered and list(b.days_used) == sorted(top5)
    base = sum(level[d] for d in top5) / 5
    assert b.adjustment is not None and b.adjustment.capped
    assert b.adjustment.raw == pytest.approx(300.0 - base)
    assert b.adjustment.applied == pytest.approx(0.1 * base)  # capped at 10 %
    assert [p.kw for p in b.adjusted] == [pytest.approx(1.1 * base)] * 8
    assert b.method == "x_of_y:5/10:additive:cap=0.10"


def test_cn_calendar_classes_worked_weekends_and_holidays() -> None:
    """China moves working days around its holidays: Sunday 4 January 2026 was worked, the
    Dragon Boat Festival (Friday 19 June) was not."""
    cn = DayCalendar("CN")
    assert cn.working(date(2026, 1, 4)) and not cn.working(date(2026, 1, 3))
    assert not cn.working(date(2026, 6, 19)) and cn.holiday(date(2026, 6, 19))
    assert DayCalendar().working(date(2026, 6, 19)) and DayCalendar().label == "none"
    assert country_of_zone("Asia/Shanghai") == "CN"
    assert country_of_zone("America/New_York") == "US" and country_of_zone("UTC") is None
    us = SettlementConfig(country="US", subdivision="NY").calendar("America/New_York")
    assert us.label == "US-NY" and not us.working(date(2026, 7, 3))  # the 4th, observed
    assert SettlementConfig().calendar("Asia/Shanghai").label == "CN"
    assert SettlementConfig().calendar("UTC").label == "none"


@pytest.mark.parametrize(
    ("settlement", "message"),
    [
        ({"country": "XX"}, "settlement.country: Value error, 'XX' is not a country"),
        (
            {"country": "US", "subdivision": "ZZ"},
            "settlement.subdivision: Value error, 'ZZ' is not a subdivision of US",
        ),
        (
            {"default": {"baseline": {"method": "x_of_y", "x": 6, "y": 5}}},
            "settlement.default.baseline.x_of_y: Value error, x: 6 is more than y=5",
        ),
        ({"default": {"baseline": {"method": "nearest"}}}, "settlement.default.baseline"),
    ],
)
def test_bad_settlement_section_is_one_line_naming_the_field(
    tmp_path: Path, settlement: dict[str, Any], message: str
) -> None:
    with pytest.raises(SiteError) as err:
        load_site(write_site(tmp_path, settlement))
    text = str(err.value)
    assert "\n" not in text and message in text, text
