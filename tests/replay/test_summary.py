"""summary.json against figures computed by hand from a store the test fills itself, with
both baselines (counterfactual run, like days of generated-by-the-test history)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.replay import independent
from tests.replay.helpers import MINUTE, fill, write_scenario
from vpp.replay.scenario import Scenario, load_scenario
from vpp.replay.summary import compute_summary, read_summary, summary_json, write_summary
from vpp.replay.table import comparison_table, render, summary_table
from vpp.store.store import Store

SH = ZoneInfo("Asia/Shanghai")
DAY0 = datetime(2026, 7, 15, tzinfo=SH)
PRICE = [0.5] * 8 + [1.0] * 12 + [0.5] * 4  # per kWh, by local hour
ZONES = ["zone-north", "zone-south", "zone-east", "zone-west"]
SCENARIO: dict[str, Any] = {
    "start": "2026-07-15T00:00:00+08:00",
    "duration": "P1D",
    "seed": 3,
    "history_days": 10,
    "prices": {"import_per_kwh": PRICE, "export_per_kwh": 0.2},
    "carbon_kg_per_kwh": 0.5,
    "ev_arrivals": {
        "explicit": {
            "ev1": [{"arrival": "PT8H", "departure": "PT17H", "energy_needed_kwh": 20}],
            "ev2": [{"arrival": "PT9H", "departure": "PT18H", "energy_needed_kwh": 30}],
            "ev3": [{"arrival": "PT1H", "departure": "PT3H", "energy_needed_kwh": 5}],
        }
    },
    "events": [
        {
            "event_id": "cut",
            "send_at": "PT5M",
            "signal": "curtail_kw",
            "start": "PT14H",
            "duration": "PT2H",
            "interval": "PT15M",
            "value": 120,
        }
    ],
}


def at(h: float) -> datetime:
    return DAY0 + timedelta(hours=h)


def counterfactual_kw(t: datetime) -> float:
    return -20.0 if at(2) <= t < at(3) else 400.0


def meter_kw(t: datetime) -> float:
    """400 kW; exports 20 kW 02–03; the event: 340 kW for 15 min, then 280 kW; a 450 kW
    rebound 16:00–16:30."""
    if at(14) <= t < at(14.25):
        return 340.0
    if at(14.25) <= t < at(16):
        return 280.0
    if at(16) <= t < at(16.5):
        return 450.0
    return counterfactual_kw(t)


def ev_energy(arrive_h: float, got_kwh: float) -> Any:
    def f(t: datetime) -> float:
        if t < at(arrive_h):
            return 0.0
        return min(got_kwh, 11.0 * (t - at(arrive_h)).total_seconds() / 3600)

    return f


def fill_run(store: Store, *, history: bool = False) -> None:
    minutes = 24 * 60
    fill(store, "meter", "import_power_kw", DAY0, minutes, meter_kw)
    for z in ZONES:
        hot = z == "zone-north"
        fill(
            store,
            z,
            "zone_temp_c",
            DAY0,
            minutes,
            lambda t, hot=hot: 27.0 if hot and at(12) <= t < at(18) else 24.0,
        )
    fill(store, "ev1", "session_energy_kwh", DAY0, minutes, ev_energy(8, 20.0))
    fill(store, "ev2", "session_energy_kwh", DAY0, minutes, ev_energy(9, 25.0))
    fill(store, "ev3", "session_energy_kwh", DAY0, minutes, ev_energy(1, 2.0))
    if history:
        first = DAY0 - timedelta(days=10)
        fill(
            store,
            "meter",
            "import_power_kw",
            first,
            10 * 24 * 60,
            lambda t: -20.0 if t.astimezone(SH).hour == 2 else 400.0,
        )


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    return load_scenario(write_scenario(tmp_path, SCENARIO))


@pytest.fixture
def counterfactual(tmp_path: Path) -> Store:
    store = Store(":memory:")
    fill(store, "meter", "import_power_kw", DAY0, 24 * 60, counterfactual_kw)
    return store


def hand_figures() -> dict[str, float]:
    """The run's figures, hour by hour (kWh in each local hour)."""
    kwh = [400.0] * 24
    kwh[2] = -20.0
    kwh[14] = 340 * 0.25 + 280 * 0.75
    kwh[15] = 280.0
    kwh[16] = 450 * 0.5 + 400 * 0.5
    cost = sum(e * PRICE[h] if e > 0 else e * 0.2 for h, e in enumerate(kwh))
    return {
        "energy_cost": cost,
        "emissions_kgco2": sum(max(e, 0) for e in kwh) * 0.5,
        "import_kwh": sum(max(e, 0) for e in kwh),
        "export_kwh": 20.0,
    }


def check_event(ev: dict[str, Any]) -> None:
    assert ev["event_id"] == "cut" and ev["signal"] == "curtail_kw"
    assert ev["requested_kw"] == 120.0
    assert ev["delivered_kw"] == pytest.approx((60 + 7 * 120) / 8, abs=1e-3)
    assert ev["delivered_ratio"] == pytest.approx(112.5 / 120, abs=1e-3)
    assert ev["min_interval_ratio"] == pytest.approx(0.5, abs=1e-3)
    assert ev["comfort_violation_degC_h"] == pytest.approx(1.0 * 2, abs=1e-3)
    assert ev["unmet_ev_kwh"] == pytest.approx(30 - 25, abs=1e-3)  # ev1 full, ev2 short
    assert ev["rebound_peak_kw"] == pytest.approx(450.0, abs=1e-3)
    assert ev["rebound_excess_kw"] == pytest.approx(50.0, abs=1e-3)


def check_run(s: dict[str, Any]) -> None:
    for key, value in hand_figures().items():
        assert s[key] == pytest.approx(value, abs=1e-3), key
    assert s["peak_import_kw"] == pytest.approx(450.0, abs=1e-3)
    assert s["rebound_peak_kw"] == pytest.approx(450.0, abs=1e-3)
    assert s["unmet_ev_kwh"] == pytest.approx(5 + 3, abs=1e-3)
    assert s["ev_sessions"] == 3
    # zone-north 27 degC from 12:00 to 18:00 (window means at window middles, linear between)
    assert s["comfort_violation_degC_h"] == pytest.approx((6 * 3600 - 60 + 20) / 3600, abs=1e-3)
    assert s["simulated_s"] == 86400.0 and s["seed"] == 3


def test_summary_with_counterfactual_baseline(
    tmp_path: Path, scenario: Scenario, counterfactual: Store
) -> None:
    store = Store(":memory:")
    fill_run(store)
    s = compute_summary(store, scenario, wall_s=2.5, counterfactual=counterfactual)
    assert s["baseline"] == "counterfactual" and s["wall_s"] == 2.5
    (ev,) = s["events"]
    check_event(ev)
    assert ev["baseline_method"] == "counterfactual" and s["strategy"] == "optimiser"
    assert ev["status"] == "not received" and ev["reported_delivered_ratio"] is None
    assert ev["reported_baseline_method"] is None and ev["reported_baseline_days"] is None
    check_run(s)


def test_summary_with_like_day_baseline(tmp_path: Path, scenario: Scenario) -> None:
    store = Store(":memory:")
    fill_run(store, history=True)
    store.save_event(at(0.1), "cut", 0, {"event_id": "cut"}, "completed")
    days = ["2026-07-13", "2026-07-14"]
    final = {
        "delivered_ratio": 0.9,
        "baseline_method": "x_of_y:5/5:none",
        "details": {"baseline": {"method": "x_of_y:5/5:none", "days_used": days}},
    }
    store.add_report(at(15.1), "cut", 0, {"delivered_ratio": 0.7}, final=False)
    store.add_report(at(16.1), "cut", 0, final, final=True)
    s = compute_summary(store, scenario, strategy="rules", wall_s=1.0)
    (ev,) = s["events"]
    check_event(ev)
    assert ev["baseline_method"].startswith("x_of_y:10/10")
    assert ev["status"] == "completed" and ev["reported_delivered_ratio"] == 0.9
    # What the agent's final report said its settlement baseline was.
    assert ev["reported_baseline_method"] == "x_of_y:5/5:none"
    assert ev["reported_baseline_days"] == days
    check_run(s)
    assert s["strategy"] == "rules" and s["baseline"] == "x_of_y"


def test_summary_is_byte_identical_for_the_same_inputs(tmp_path: Path, scenario: Scenario) -> None:
    texts = []
    for k in range(2):
        store = Store(tmp_path / f"run{k}.sqlite")
        fill_run(store)
        s = compute_summary(store, scenario, wall_s=1.25)
        texts.append(write_summary(tmp_path / f"out{k}", s).read_bytes())
    assert texts[0] == texts[1]
    data = json.loads(texts[0])
    assert list(data) == sorted(data)
    assert summary_json(data).encode() == texts[0]
    assert texts[0].endswith(b"\n")


def test_events_after_the_run_and_test_events_are_listed_unmeasured(
    tmp_path: Path, scenario: Scenario
) -> None:
    store = Store(":memory:")
    fill_run(store)
    short = scenario.with_duration("PT15H")
    (ev,) = compute_summary(store, short)["events"]
    assert ev["delivered_ratio"] is None and ev["note"] == "ends after the run: not measured"
    data = {**SCENARIO, "events": [{**SCENARIO["events"][0], "test": True}]}
    sc = load_scenario(write_scenario(tmp_path, data, "t.yaml"))
    (ev,) = compute_summary(store, sc)["events"]
    assert ev["requested_kw"] is None and ev["note"] == "test event: not acted on"


def test_missing_meter_data_shows_as_coverage(tmp_path: Path, scenario: Scenario) -> None:
    store = Store(":memory:")
    fill(store, "meter", "import_power_kw", DAY0, 12 * 60, lambda t: 100.0)
    s = compute_summary(store, scenario)
    assert s["meter_coverage"] == 0.5
    assert s["import_kwh"] == pytest.approx(1200.0)
    assert s["peak_import_kw"] == 100.0
    (ev,) = s["events"]
    assert ev["delivered_kw"] is None and ev["unmet_ev_kwh"] == pytest.approx(20 + 30)


def test_tables_show_the_figures(tmp_path: Path, scenario: Scenario, counterfactual: Store) -> None:
    store = Store(":memory:")
    fill_run(store)
    a = compute_summary(store, scenario, counterfactual=counterfactual, strategy="optimiser")
    text = render(summary_table(a))
    for cell in ("cut", "curtail_kw", "120.0", "112.5", "94%", "50%", "2.00", "5.0", "450.0"):
        assert cell in text, cell
    assert f"{hand_figures()['energy_cost']:,.2f}" in text
    b = json.loads(summary_json(a))
    b["strategy"] = "rules"
    b["energy_cost"] = a["energy_cost"] + 100
    b["events"][0]["delivered_ratio"] = 1.0
    cmp = render(comparison_table(a, b))
    assert "optimiser" in cmp and "rules" in cmp
    assert "+100.00" in cmp and "+6 pp" in cmp
    assert math.isclose(b["energy_cost"] - a["energy_cost"], 100)
    _ = MINUTE


EVENT_KEYS = {"event_id", "signal", "requested_kw", "delivered_kw", "delivered_ratio",
              "min_interval_ratio", "comfort_violation_degC_h", "unmet_ev_kwh"}  # fmt: skip
RUN_KEYS = {"energy_cost", "emissions_kgco2", "peak_import_kw", "rebound_peak_kw",
            "simulated_s", "wall_s", "strategy", "seed"}  # fmt: skip


def test_summary_has_the_issue_keys_and_reads_back(tmp_path: Path, scenario: Scenario) -> None:
    store = Store(":memory:")
    fill_run(store)
    s = compute_summary(store, scenario, wall_s=9.0)
    assert RUN_KEYS <= set(s) and EVENT_KEYS <= set(s["events"][0])
    write_summary(tmp_path, s)
    assert read_summary(tmp_path) == s == read_summary(tmp_path / "summary.json")
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"x\.json: not a replay summary"):
        read_summary(tmp_path / "x.json")


def test_independent_computation_agrees(scenario: Scenario, counterfactual: Store) -> None:
    store = Store(":memory:")
    fill_run(store)
    s = compute_summary(store, scenario, counterfactual=counterfactual)
    for key, value in independent.run_figures(store, scenario).items():
        assert s[key] == pytest.approx(value, abs=1e-3), key
    (ev,) = scenario.final_events()
    for key, value in independent.event_figures(store, counterfactual, scenario, ev).items():
        assert s["events"][0][key] == pytest.approx(value, abs=1e-3), key
    assert s["unmet_ev_kwh"] == pytest.approx(independent.unmet_ev_kwh(store, scenario), abs=1e-3)
    rect = independent.comfort_degc_h(store, scenario, scenario.start, scenario.end)
    assert s["comfort_violation_degC_h"] == pytest.approx(rect, rel=0.01)


def test_a_car_still_plugged_in_at_the_end_owes_what_it_can_no_longer_get(
    tmp_path: Path,
) -> None:
    """A run cut at 16:00: ev1 (full) and ev2 still plugged in; ev2 asked for 60 kWh, has 25
    and leaves at 18:00, so even at its 11 kW it misses 60 - 25 - 2 * 11 = 13 kWh."""
    data = json.loads(json.dumps(SCENARIO))
    data["ev_arrivals"]["explicit"]["ev2"][0]["energy_needed_kwh"] = 60
    sc = load_scenario(write_scenario(tmp_path, data)).with_duration("PT16H")
    store = Store(":memory:")
    fill_run(store)
    s = compute_summary(store, sc)
    assert (s["ev_sessions"], s["ev_sessions_open"]) == (1, 2)
    assert s["unmet_ev_kwh"] == pytest.approx(3 + 13, abs=1e-3)  # ev3 short 3, ev2 13
    assert s["unmet_ev_kwh"] == pytest.approx(independent.unmet_ev_kwh(store, sc), abs=1e-3)
    # With time to spare (the run cut at 15:00, 3 h left at 11 kW) ev2 owes 2 kWh.
    s = compute_summary(store, sc.with_duration("PT15H"))
    assert s["unmet_ev_kwh"] == pytest.approx(3 + 60 - 25 - 33, abs=1e-3)


def test_a_missing_store_file_is_an_error(tmp_path: Path, scenario: Scenario) -> None:
    with pytest.raises(FileNotFoundError, match="no such store"):
        compute_summary(tmp_path / "nope.sqlite", scenario)
    assert not (tmp_path / "nope.sqlite").exists()


def test_comparison_says_when_requested_comes_from_each_runs_baseline(
    scenario: Scenario, counterfactual: Store
) -> None:
    """A cap's requested reduction is baseline − cap, each run against its own
    counterfactual: when the two differ, the row says so rather than suggesting the grid
    asked differently."""
    store = Store(":memory:")
    fill_run(store)
    a = compute_summary(store, scenario, counterfactual=counterfactual, strategy="optimiser")
    same = render(comparison_table(a, json.loads(summary_json(a))), width=200)
    assert "cut requested kW " in same and "own baseline" not in same
    b = json.loads(summary_json(a))
    b["events"][0]["requested_kw"] = 150.0
    differ = render(comparison_table(a, b), width=200)
    assert "cut requested kW (from each run's own baseline)" in differ
