"""ACCEPTANCE CHECK FOR ISSUE 5, NOT PART OF `make test` YET: it passed once and failed twice
(interval ratios 0.15 and -1.09 against the counterfactual) in this session; the closed loop is
not yet robust. Run: `PYTHONPATH=. .venv/bin/python -m pytest acceptance -p no:cacheprovider`.

Demand response end to end: the bundled summer day (shortened to 20 h) replayed through
the real agent on the virtual clock, the simulated office over Modbus and MQTT, a real
Mosquitto, and the counterfactual run in a second process. Figures are checked against an
independent computation from the stored telemetry (tests/replay/independent.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Broker
from tests.replay import independent
from vpp.replay.runner import COUNTERFACTUAL, STORE, replay
from vpp.replay.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "config" / "scenarios"


@pytest.mark.timeout(400)
async def test_day_ahead_curtailment_is_delivered_against_the_counterfactual(
    fresh_mosquitto: Broker, tmp_path: Path
) -> None:
    mosquitto = fresh_mosquitto
    sc = load_scenario(SCENARIOS / "office-summer-day.yaml").with_duration("PT20H")
    out = tmp_path / "run"
    summary = await replay(sc, out, strategy="optimiser", broker_url=mosquitto.url)

    messages = [json.loads(line) for line in (out / "messages.jsonl").read_text().splitlines()]
    statuses = [m["msg"]["status"] for m in messages if m["topic"].endswith("/responses")]
    assert statuses == ["received", "opt_in", "completed"]
    reports = [m["msg"] for m in messages if m["topic"].endswith("/reports")]
    assert reports and reports[-1]["final"] is True
    assert len(reports[-1]["intervals"]) == 8

    (event,) = summary["events"]
    ev = sc.final_events()[0]
    mine = independent.event_figures(out / STORE, out / COUNTERFACTUAL / STORE, sc, ev)
    assert event["delivered_kw"] == pytest.approx(mine["delivered_kw"], abs=0.01)
    assert event["min_interval_ratio"] == pytest.approx(mine["min_interval_ratio"], abs=0.01)
    # The contract's bar: at least 95 % of the request in every 15-min interval.
    assert mine["min_interval_ratio"] >= 0.95
    assert event["comfort_violation_degC_h"] == 0.0
    assert summary["unmet_ev_kwh"] == pytest.approx(independent.unmet_ev_kwh(out / STORE, sc))
    assert summary["unmet_ev_kwh"] == 0.0
