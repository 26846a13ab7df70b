"""Scenario files: the bundled ones load with what they promise; broken ones name the field;
EV draws are deterministic per seed; prices, carbon and weather evaluate as documented."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.replay.helpers import BUNDLED, SCENARIOS, write_scenario
from vpp.replay.scenario import ScenarioError, load_scenario

SH = ZoneInfo("Asia/Shanghai")
BASE = {"start": "2026-07-15T00:00:00+08:00", "duration": "P1D"}


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_scenarios_load(name: str) -> None:
    sc = load_scenario(SCENARIOS / f"{name}.yaml")
    assert sc.end > sc.start
    assert sc.event_messages(), "every bundled scenario sends events"
    for m in sc.event_messages():
        assert m.send_at < m.event.start
        assert sc.start <= m.event.end <= sc.end
    assert sc.config.history_days >= 10
    assert sc.sessions(), "vehicles arrive"
    site = sc.replay_site()
    ev1 = site.device("ev1").config.sim or {}
    assert ev1["sessions"] == [s.model_dump() for s in sc.ev_sessions()["ev1"]]


def test_summer_day_event() -> None:
    sc = load_scenario(SCENARIOS / "office-summer-day.yaml")
    assert sc.start == datetime(2026, 7, 15, tzinfo=SH) and sc.duration == timedelta(days=1)
    assert sc.start.weekday() < 5
    (msg,) = sc.event_messages()
    assert msg.send_at == datetime(2026, 7, 15, 0, 5, tzinfo=SH)
    ev = msg.event
    assert ev.signal == "curtail_kw" and len(ev.intervals) == 8
    assert {iv.value for iv in ev.intervals} == {120.0}
    assert {iv.duration for iv in ev.intervals} == {timedelta(minutes=15)}
    assert ev.start == datetime(2026, 7, 15, 14, tzinfo=SH)
    assert ev.end == datetime(2026, 7, 15, 16, tzinfo=SH)
    for s in sc.sessions():
        local_arr, local_dep = s.arrival.astimezone(SH), s.departure.astimezone(SH)
        assert 6.5 <= local_arr.hour + local_arr.minute / 60 <= 10.5
        assert 16 <= local_dep.hour <= 20
        assert 15 <= s.energy_needed_kwh <= 30


def test_intraday_cap_event_and_faults() -> None:
    sc = load_scenario(SCENARIOS / "office-intraday-cap.yaml")
    (msg,) = sc.event_messages()
    assert msg.event.signal == "import_cap_kw"
    assert msg.event.start - msg.send_at == timedelta(minutes=30)
    assert msg.event.end - msg.event.start == timedelta(hours=1)
    faults = {f.device: f for f in sc.fault_windows()}
    bat = faults["bat1"]
    assert bat.faults.offline
    assert bat.start == msg.event.start + timedelta(minutes=30) and bat.end == msg.event.end
    assert faults["ev3"].faults.ignore_commands
    env = sc.environment()
    # The CSV: 35.0 degC at 15:00, 900-odd W/m2 around noon, nothing at night.
    assert env.outdoor_temp_c(datetime(2026, 7, 16, 15, tzinfo=SH)) == pytest.approx(35.0)
    assert env.irradiance_w_m2(datetime(2026, 7, 16, 2, tzinfo=SH)) == 0.0
    assert env.irradiance_w_m2(datetime(2026, 7, 16, 12, tzinfo=SH)) > 800


def test_week_has_events_on_different_days() -> None:
    sc = load_scenario(SCENARIOS / "office-week.yaml")
    assert sc.duration == timedelta(days=7)
    days = [ev.start.astimezone(SH).date() for ev in sc.final_events()]
    assert len(days) >= 3 and len(set(days)) == len(days)
    arrival_days = {s.arrival.astimezone(SH).weekday() for s in sc.sessions()}
    assert arrival_days == {0, 1, 2, 3, 4}, "weekday arrivals only"


def test_with_duration_shortens_only_the_run() -> None:
    sc = load_scenario(SCENARIOS / "office-week.yaml")
    short = sc.with_duration("PT6H")
    assert short.end - short.start == timedelta(hours=6)
    assert short.config.events == sc.config.events
    assert sc.with_duration(2).duration == timedelta(hours=2)
    assert [s for s in sc.sessions() if s.arrival < short.end] == short.sessions()


def test_from_time_begins_later_and_keeps_every_time_where_it_was(tmp_path: Path) -> None:
    sc = load_scenario(SCENARIOS / "office-intraday-cap.yaml")
    noon = sc.from_time("PT12H")
    assert noon.start == sc.start + timedelta(hours=12) and noon.end == sc.end
    assert [(m.send_at, m.event) for m in noon.event_messages()] == [
        (m.send_at, m.event) for m in sc.event_messages()
    ]
    assert [(f.device, f.start, f.end) for f in noon.fault_windows()] == [
        (f.device, f.start, f.end) for f in sc.fault_windows()
    ]
    # The day's drawn vehicles, as explicit visits: every one still plugged in at noon.
    assert noon.sessions() == [s for s in sc.sessions() if s.departure > noon.start]
    assert noon.sessions() and all(s.arrival < noon.start for s in noon.sessions())
    # Saved and loaded again (what the counterfactual process reads): the same scenario.
    again = load_scenario(noon.save(tmp_path / "noon.yaml"))
    assert again.sessions() == noon.sessions() and again.start == noon.start
    # A day-ahead event (sent at 00:05) begun at noon is sent at noon.
    summer = load_scenario(SCENARIOS / "office-summer-day.yaml").from_time("PT12H")
    assert [m.send_at for m in summer.event_messages()] == [summer.start]
    with pytest.raises(ValueError, match="from_time"):
        sc.from_time("P2D")


def _error(tmp_path: Path, data: dict[str, object]) -> str:
    with pytest.raises(ScenarioError) as e:
        load_scenario(write_scenario(tmp_path, {**BASE, **data}))
    return str(e.value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"wheather": {}}, "s.yaml: wheather: Extra inputs are not permitted"),
        ({"duration": "P1M"}, "s.yaml: duration:"),
        ({"duration": -3}, "s.yaml: duration:"),
        ({"start": "2026-07-15T00:00:00"}, "s.yaml: start:"),
        ({"start": "2026-07-15T00:00:00+02:00"}, "s.yaml: start: offset +02:00 is not"),
        ({"timezone": "Mars/Olympus"}, "s.yaml: timezone: Value error, unknown time zone"),
        ({"strategy": "magic"}, "s.yaml: strategy:"),
        ({"base_load": {"peak": 3}}, "s.yaml: base_load.peak: Extra inputs"),
        ({"weather": {"csv": "w.csv", "outdoor_max_c": 30}}, "s.yaml: weather: Value error"),
        (
            {
                "prices": {
                    "import_per_kwh": {"tou": [{"start": "08:00", "end": "20:00", "per_kwh": 1}]}
                }
            },
            "import_per_kwh: Value error, time-of-use table: tou: Value error, 00:00 local is not",
        ),
        (
            {"prices": {"import_per_kwh": [1, 2, 3]}},
            "s.yaml: prices.import_per_kwh: Value error, hourly values: expected 24, got 3",
        ),
        ({"carbon_kg_per_kwh": "lots"}, "s.yaml: carbon_kg_per_kwh"),
        (
            {"faults": [{"device": "bat9", "from": "PT1H", "offline": True}]},
            "s.yaml: faults[0].device: the site has no device 'bat9'",
        ),
        (
            {"faults": [{"device": "bat1", "from": "PT1H"}]},
            "s.yaml: faults[0]: Value error, a fault needs",
        ),
        (
            {"faults": [{"device": "bat1", "from": "PT2H", "to": "PT1H", "stuck": True}]},
            "s.yaml: faults[0].to: must be after from",
        ),
        (
            {"ev_arrivals": {"explicit": {"ev99": [{"arrival": 8, "departure": 9}]}}},
            "s.yaml: ev_arrivals.explicit.ev99: the site has no EV charger",
        ),
        (
            {"ev_arrivals": {"random": {"count": 2, "arrival_mean_h": 8, "energy_kwh": [30, 10]}}},
            "s.yaml: ev_arrivals.random: Value error, energy_kwh",
        ),
        (
            {
                "events": [
                    {
                        "event_id": "e",
                        "send_at": "PT1H",
                        "signal": "curtail_kw",
                        "start": "PT2H",
                        "duration": "PT1H",
                        "value": -5,
                    }
                ]
            },
            "s.yaml: events[0].intervals[0].value: curtail_kw value must be within",
        ),
        (
            {
                "events": [
                    {
                        "event_id": "e",
                        "send_at": "PT3H",
                        "signal": "curtail_kw",
                        "start": "PT2H",
                        "duration": "PT1H",
                        "value": 5,
                    }
                ]
            },
            "s.yaml: events[0].send_at: after the event starts",
        ),
        (
            {
                "events": [
                    {
                        "event_id": "e",
                        "send_at": "PT1H",
                        "signal": "curtail_kw",
                        "start": "PT2H",
                        "duration": "PT1H",
                        "value": 5,
                    },
                    {
                        "event_id": "e",
                        "modification": 1,
                        "send_at": "PT3H",
                        "signal": "curtail_kw",
                        "start": "PT2H",
                        "duration": "PT1H",
                        "value": 8,
                    },
                ]
            },
            "s.yaml: events[1].send_at: at or after the modified event ends",
        ),
        (
            {"events": [{"event_id": "e", "send_at": "PT1H", "signal": "curtail_kw", "value": 5}]},
            "s.yaml: events[0]: Value error, give intervals, or all of start, duration and value",
        ),
        (
            {
                "events": [
                    {
                        "event_id": "e",
                        "send_at": True,
                        "signal": "curtail_kw",
                        "start": "PT2H",
                        "duration": "PT1H",
                        "value": 5,
                    }
                ]
            },
            "s.yaml: events[0].send_at: Value error, expected a time",
        ),
    ],
)
def test_broken_scenarios_name_the_field(
    tmp_path: Path, data: dict[str, object], expected: str
) -> None:
    assert expected in _error(tmp_path, data)


def test_broken_site_and_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "no.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(bad)
    msg = _error(tmp_path, {"site": str(tmp_path / "nosite.yaml")})
    assert "s.yaml: site:" in msg and "cannot read" in msg


def test_weather_csv_errors_name_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "w.csv").write_text(
        "time,outdoor_temp_c,irradiance_w_m2\n"
        "2026-07-15T00:00:00+08:00,28,0\n"
        "2026-07-15 01:00,hot,0\n"
    )
    msg = _error(tmp_path, {"weather": {"csv": "w.csv"}})
    assert "s.yaml: weather.csv:" in msg and "line 3: outdoor_temp_c: not a number" in msg
    (tmp_path / "w.csv").write_text("time,temp\n")
    assert "missing column(s) outdoor_temp_c, irradiance_w_m2" in _error(
        tmp_path, {"weather": {"csv": "w.csv"}}
    )


def test_weather_csv_naive_times_are_local(tmp_path: Path) -> None:
    (tmp_path / "w.csv").write_text(
        "time,outdoor_temp_c,irradiance_w_m2\n2026-07-15 00:00,20,0\n2026-07-15 10:00,30,500\n"
    )
    sc = load_scenario(write_scenario(tmp_path, {**BASE, "weather": {"csv": "w.csv"}}))
    env = sc.environment()
    assert env.outdoor_temp_c(datetime(2026, 7, 15, 5, tzinfo=SH)) == pytest.approx(25.0)
    assert env.irradiance_w_m2(datetime(2026, 7, 15, 5, tzinfo=SH)) == pytest.approx(250.0)


def test_builtin_weather_overrides_the_site(tmp_path: Path) -> None:
    sc = load_scenario(write_scenario(tmp_path, {**BASE, "weather": {"outdoor_max_c": 40}}))
    env = sc.environment()
    assert env.outdoor_temp_c(datetime(2026, 7, 15, 15, tzinfo=SH)) == pytest.approx(40.0)
    assert env.outdoor_temp_c(datetime(2026, 7, 15, 3, tzinfo=SH)) == pytest.approx(27.0)


def test_prices_and_carbon(tmp_path: Path) -> None:
    hourly = [float(h) for h in range(24)]
    sc = load_scenario(
        write_scenario(
            tmp_path,
            {
                **BASE,
                "prices": {"import_per_kwh": hourly, "export_per_kwh": 0.1},
                "carbon_kg_per_kwh": 0.5,
            },
        )
    )
    times = [datetime(2026, 7, 15, h, 30, tzinfo=SH) for h in (0, 7, 23)]
    assert sc.import_prices(times) == [0.0, 7.0, 23.0]
    assert sc.export_prices(times) == [0.1, 0.1, 0.1]
    assert sc.carbon(times) == [0.5, 0.5, 0.5]
    default = load_scenario(write_scenario(tmp_path, BASE, "d.yaml"))
    # The Shanghai-like default: valley at night, peak 08-11, flat 11-13; 0.58 kg/kWh.
    got = default.import_prices([datetime(2026, 7, 15, h, tzinfo=SH) for h in (3, 9, 12, 22)])
    assert got == [0.31, 1.21, 0.76, 0.31]
    assert default.carbon(times) == [0.58] * 3
    step = default.step_grid(timedelta(hours=1))
    assert len(step) == 24 and step[0] == default.start


def test_event_forms_and_send_times(tmp_path: Path) -> None:
    events = [
        {"event_id": "a", "send_at": "-PT10H", "signal": "import_cap_kw",
         "intervals": [{"start": "PT14H", "duration": "PT30M", "value": 400},
                       {"start": "2026-07-15T14:30:00+08:00", "duration": "PT30M", "value": 380}]},
        {"event_id": "b", "send_at": 1.5, "signal": "price", "start": "PT10H", "duration": "PT50M",
         "interval": "PT20M", "value": 2.0, "priority": 2, "program": "p"},
        {"event_id": "a", "modification": 1, "send_at": "PT13H", "signal": "import_cap_kw",
         "start": "PT14H", "duration": "PT1H", "value": 420},
    ]  # fmt: skip
    sc = load_scenario(write_scenario(tmp_path, {**BASE, "events": events}))
    msgs = sc.event_messages()
    assert [(m.event.event_id, m.event.modification) for m in msgs] == [
        ("a", 0),
        ("b", 0),
        ("a", 1),
    ]
    assert msgs[0].send_at == datetime(2026, 7, 14, 14, tzinfo=SH)
    assert msgs[1].send_at == datetime(2026, 7, 15, 1, 30, tzinfo=SH)
    assert [iv.value for iv in msgs[0].event.intervals] == [400, 380]
    assert [iv.duration for iv in msgs[1].event.intervals] == [
        timedelta(minutes=20),
        timedelta(minutes=20),
        timedelta(minutes=10),
    ]
    assert msgs[1].payload()["program"] == "p" and msgs[1].payload()["priority"] == 2
    final = sc.final_events()
    assert [(e.event_id, e.modification) for e in final] == [("b", 0), ("a", 1)]


def test_faults_and_broker_restarts(tmp_path: Path) -> None:
    sc = load_scenario(
        write_scenario(
            tmp_path,
            {**BASE, "faults": [{"device": "ev2", "from": "PT1H", "delay_s": 3}],
             "broker_restart_at": "PT5H"},
        )
    )  # fmt: skip
    (f,) = sc.fault_windows()
    assert f.faults.delay_s == 3 and f.start == sc.start + timedelta(hours=1) and f.end == sc.end
    assert sc.broker_restarts() == [sc.start + timedelta(hours=5)]


RANDOM = {"count": 6, "arrival_mean_h": 8.5, "arrival_sd_h": 0.5, "stay_h": [8, 10],
          "energy_kwh": [15, 30], "seed": 5}  # fmt: skip


def _draw(tmp_path: Path, name: str, **over: object) -> list[tuple[str, datetime, datetime, float]]:
    data = {**BASE, "duration": "P3D", "ev_arrivals": {"random": {**RANDOM, **over}}}
    sc = load_scenario(write_scenario(tmp_path, data, name))
    return [(s.charger, s.arrival, s.departure, s.energy_needed_kwh) for s in sc.sessions()]


def test_ev_draws_are_deterministic_per_seed(tmp_path: Path) -> None:
    a = _draw(tmp_path, "a.yaml")
    assert a == _draw(tmp_path, "b.yaml")
    assert a != _draw(tmp_path, "c.yaml", seed=6)
    assert len(a) == 3 * 6  # Wed, Thu, Fri: all weekdays
    for c in {x[0] for x in a}:
        visits = sorted((x[1], x[2]) for x in a if x[0] == c)
        assert all(v[1] <= w[0] for v, w in itertools.pairwise(visits))
    for _, arr, dep, kwh in a:
        assert 8 * 3600 <= (dep - arr).total_seconds() <= 10 * 3600
        assert 15 <= kwh <= 30


def test_ev_draws_skip_weekends_and_share_chargers(tmp_path: Path) -> None:
    weekend = {**BASE, "start": "2026-07-18T00:00:00+08:00", "duration": "P2D",
               "ev_arrivals": {"random": RANDOM}}  # fmt: skip
    assert load_scenario(write_scenario(tmp_path, weekend, "w.yaml")).sessions() == []
    # 20 vehicles for 2 chargers: only 2 find a free one, the rest are turned away.
    few = _draw(tmp_path, "f.yaml", count=20, chargers=["ev1", "ev2"], weekdays_only=False)
    per_day = {(x[0], x[1].date()) for x in few}
    assert len(few) == len(per_day) == 2 * 3


def test_explicit_arrivals_replace_site_sessions(tmp_path: Path) -> None:
    visit = {"arrival": "PT8H", "departure": "2026-07-15T17:00:00+08:00", "energy_needed_kwh": 12}
    data = {**BASE, "ev_arrivals": {"explicit": {"ev1": [visit]}}}
    sc = load_scenario(write_scenario(tmp_path, data))
    sessions = sc.ev_sessions()
    assert list(sessions) == ["ev1"]
    (s,) = sessions["ev1"]
    assert (s.arrival, s.departure, s.energy_needed_kwh) == (8 * 3600.0, 17 * 3600.0, 12.0)
    assert sc.sim_params()["ev2"]["sessions"] == []
    # Without ev_arrivals the site file's own sessions are kept.
    plain = load_scenario(write_scenario(tmp_path, BASE, "p.yaml"))
    assert len(plain.sessions()) == 8 and plain.sessions()[0].arrival == plain.start + timedelta(
        seconds=900
    )


def test_offsets_are_elapsed_time_across_daylight_saving(tmp_path: Path) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    data = {
        "timezone": "Europe/Berlin",
        "start": "2026-03-28T00:00:00+01:00",
        "duration": "P2D",
        "events": [{"event_id": "e", "send_at": "PT1H", "signal": "curtail_kw",
                    "start": "PT30H", "duration": "PT1H", "value": 10}],
    }  # fmt: skip
    sc = load_scenario(write_scenario(tmp_path, data))
    assert sc.end == datetime(2026, 3, 30, 1, tzinfo=berlin)  # 48 real hours: clocks went forward
    (msg,) = sc.event_messages()
    assert msg.event.start == datetime(2026, 3, 29, 7, tzinfo=berlin)
    grid = sc.step_grid(timedelta(hours=1))
    assert len(grid) == 48 and len({t.timestamp() for t in grid}) == 48
    assert grid[-1].timestamp() - grid[0].timestamp() == 47 * 3600


def test_random_arrivals_avoid_explicit_visits(tmp_path: Path) -> None:
    visit = {"arrival": "PT6H", "departure": "PT20H", "energy_needed_kwh": 10}
    data = {
        **BASE,
        "ev_arrivals": {
            "explicit": {"ev1": [visit]},
            "random": {**RANDOM, "count": 3, "chargers": ["ev1", "ev2", "ev3", "ev4"]},
        },
    }
    sc = load_scenario(write_scenario(tmp_path, data))
    by_charger: dict[str, int] = {}
    for s in sc.sessions():
        by_charger[s.charger] = by_charger.get(s.charger, 0) + 1
    assert by_charger == {"ev1": 1, "ev2": 1, "ev3": 1, "ev4": 1}
    (explicit,) = [s for s in sc.sessions() if s.charger == "ev1"]
    assert explicit.energy_needed_kwh == 10


def test_carbon_series_steps_from_each_time(tmp_path: Path) -> None:
    series = [["2026-07-15T06:00:00+08:00", 0.7], ["2026-07-15T12:00:00+08:00", 0.4]]
    sc = load_scenario(write_scenario(tmp_path, {**BASE, "carbon_kg_per_kwh": series}))
    times = [datetime(2026, 7, 15, h, tzinfo=SH) for h in (1, 6, 11, 12, 23)]
    assert sc.carbon(times) == [0.7, 0.7, 0.7, 0.4, 0.4]
    bad = [["2026-07-15T06:00:00+08:00", 0.7], ["2026-07-15T05:00:00+08:00", 0.4]]
    msg = _error(tmp_path, {"carbon_kg_per_kwh": bad})
    assert "carbon_kg_per_kwh: Value error, series: points: Value error, [1]: time is not" in msg


def test_ev_draws_default_to_the_scenario_seed(tmp_path: Path) -> None:
    rnd = {k: v for k, v in RANDOM.items() if k != "seed"}

    def draw(name: str, run_seed: int, **random: object) -> list[datetime]:
        data = {**BASE, "seed": run_seed, "ev_arrivals": {"random": {**rnd, **random}}}
        return [s.arrival for s in load_scenario(write_scenario(tmp_path, data, name)).sessions()]

    assert draw("a.yaml", 5) == draw("b.yaml", 99, seed=5)
    assert draw("c.yaml", 5) != draw("d.yaml", 6)


def test_several_random_groups_beside_explicit_visits(tmp_path: Path) -> None:
    """Commuters in the morning (`random`), visitors in the afternoon (`random_groups`) and
    one explicit visit: every group's vehicles are there, none overlaps another on a charger,
    and the groups draw independently (the afternoon group has its own seed by default)."""
    visit = {"arrival": "PT6H", "departure": "PT20H", "energy_needed_kwh": 10}
    afternoon = {"count": 3, "arrival_mean_h": 14, "arrival_sd_h": 0.3, "stay_h": 2,
                 "energy_kwh": [5, 10]}  # fmt: skip
    data = {
        **BASE,
        "ev_arrivals": {
            "explicit": {"ev1": [visit]},
            "random": {**RANDOM, "count": 2, "stay_h": 3},
            "random_groups": [afternoon],
        },
    }
    sessions = load_scenario(write_scenario(tmp_path, data)).sessions()
    hours = sorted(s.arrival.astimezone(SH).hour for s in sessions)
    assert hours[0] == 6 and all(7 <= h <= 10 for h in hours[1:3])
    assert all(13 <= h <= 15 for h in hours[3:])
    assert len(sessions) == 1 + 2 + 3
    for a, b in itertools.combinations(sessions, 2):
        if a.charger == b.charger:
            assert a.departure <= b.arrival or b.departure <= a.arrival, (a, b)
    again = load_scenario(write_scenario(tmp_path, data)).sessions()
    assert again == sessions
    bad = {**BASE, "ev_arrivals": {"random_groups": [{**afternoon, "chargers": ["ev99"]}]}}
    assert "s.yaml: ev_arrivals.random_groups[0].chargers: the site has no EV charger" in (
        _error(tmp_path, bad)
    )


def test_history_before_the_first_weather_row_is_an_error_or_the_first_day_repeated(
    tmp_path: Path,
) -> None:
    """A weather CSV that starts with the scenario held its first row (midnight: no sun, the
    night's temperature) over every history day, so the like-day baseline saw ten cold dark
    days. That is an error now, unless `weather.history: repeat_first_day` says to use the
    file's first day for each history day."""
    rows = [f"2026-07-15T{h:02d}:00:00+08:00,{20 + h / 2},{max(0, 900 - 100 * abs(h - 12))}"
            for h in range(24)]  # fmt: skip
    (tmp_path / "w.csv").write_text("time,outdoor_temp_c,irradiance_w_m2\n" + "\n".join(rows))
    data = {**BASE, "history_days": 3, "weather": {"csv": "w.csv"}}
    msg = _error(tmp_path, data)
    assert "s.yaml: weather.csv: the first row (2026-07-15T00:00:00+08:00) is after" in msg
    assert "weather.history: repeat_first_day" in msg
    data["weather"] = {"csv": "w.csv", "history": "repeat_first_day"}
    env = load_scenario(write_scenario(tmp_path, data)).environment()
    for day in (12, 13, 14, 15):
        noon = datetime(2026, 7, day, 12, tzinfo=SH)
        assert env.irradiance_w_m2(noon) == pytest.approx(900.0)
        assert env.outdoor_temp_c(noon) == pytest.approx(26.0)
    assert "only for a weather csv" in _error(
        tmp_path, {**BASE, "weather": {"history": "repeat_first_day"}}
    )
