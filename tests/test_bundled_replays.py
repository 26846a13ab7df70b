"""Each bundled scenario replayed through the real agent (`vpp.replay.runner.replay`: the
simulated office over Modbus and MQTT, a real Mosquitto, the virtual clock, and the
counterfactual in a second process), shortened to its first event (the week to its first
six hours) and, for an afternoon event, begun later (`Scenario.from_time`: a replay costs
its simulated hours), and the summary's figures checked against this test's own
computation from the stored telemetry (tests/replay/independent.py)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Broker
from tests.replay import independent
from vpp.replay.runner import COUNTERFACTUAL, STORE, replay
from vpp.replay.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "config" / "scenarios"

CASES = [
    # The summer day from 08:00 (before its cars come) to 16:30, its curtailment
    # (14:00-16:00, sent day-ahead: at 08:00 here) and the final report included.
    ("office-summer-day", "PT8H", "PT16H30M"),
    # The intraday cap (14:00-15:00) from noon, the battery offline from 14:30, a deaf
    # charger.
    ("office-intraday-cap", "PT12H", "PT15H30M"),
    # The week's Monday morning: hourly carbon intensity, weekday-only vehicles, events later.
    ("office-week", None, "PT6H"),
    # A curtailment deepened and extended mid-event (modification 1 at 14:30), to 16:30.
    ("office-modified-curtailment", None, "PT4H30M"),
]


@pytest.mark.timeout(400)
@pytest.mark.parametrize(("name", "begin", "until"), CASES)
async def test_bundled_scenario_through_the_agent(
    fresh_mosquitto: Broker, tmp_path: Path, name: str, begin: str | None, until: str
) -> None:
    sc = load_scenario(SCENARIOS / f"{name}.yaml").with_duration(until)
    sc = sc if begin is None else sc.from_time(begin)
    out = tmp_path / name
    s = await replay(sc, out, strategy="optimiser", broker_url=fresh_mosquitto.url)
    assert json.loads((out / "summary.json").read_text()) == s
    run, cf = out / STORE, out / COUNTERFACTUAL / STORE

    assert s["simulated_s"] == sc.duration.total_seconds()
    for key, value in independent.run_figures(run, sc).items():
        assert s[key] == pytest.approx(value, abs=2e-3), key
    assert s["unmet_ev_kwh"] == pytest.approx(independent.unmet_ev_kwh(run, sc), abs=2e-3)
    assert s["unmet_ev_kwh"] == 0.0
    assert s["comfort_violation_degC_h"] == pytest.approx(
        independent.comfort_degc_h(run, sc, sc.start, sc.end), abs=0.05
    )

    measured = [e for e in sc.final_events() if e.end <= sc.end and e.signal != "price"]
    by_id = {e["event_id"]: e for e in s["events"]}
    assert list(by_id) == [e.event_id for e in sc.final_events()]
    for ev in sc.final_events():
        if ev not in measured:
            assert by_id[ev.event_id]["delivered_ratio"] is None
    for ev in measured:
        got = by_id[ev.event_id]
        mine = independent.event_figures(run, cf, sc, ev)
        for key, value in mine.items():
            assert got[key] == pytest.approx(value, abs=2e-3), (ev.event_id, key)
        assert got["status"] == "completed"
        assert got["min_interval_ratio"] >= 0.95, (ev.event_id, got)
        # Not by shedding far more than asked: the agent's own baseline describes the site
        # without the event (within 10 % of the counterfactual in every interval).
        cf_kw = independent.meter(cf, sc)
        for iv in ev.intervals:
            a, b = iv.start.timestamp(), iv.end.timestamp()
            window = [v for t, v in cf_kw.items() if a <= t < b]
            with sqlite3.connect(run) as db:
                (base,) = db.execute(
                    "SELECT AVG(kw) FROM baselines WHERE event_id=? AND ts>=? AND ts<?",
                    (ev.event_id, a, b),
                ).fetchone()
            truth = sum(window) / len(window)
            assert abs(base - truth) <= 0.10 * truth, (ev.event_id, iv.start, base, truth)
        if ev.signal == "curtail_kw":
            assert got["delivered_ratio"] <= 1.5, got
    assert len(measured) == (0 if name == "office-week" else 1)
