"""`broker_restart_at` is enacted: the replay stops and restarts the broker it runs at that
instant (embedded amqtt, or a Mosquitto of its own), and the event still completes and is
reported (issue 12, point 6)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.replay.helpers import SCENARIOS, write_scenario
from vpp.replay.runner import replay
from vpp.replay.scenario import Scenario, load_scenario


def _restart_mid_event(tmp: Path) -> Scenario:
    """The summer curtailment moved to the first hour; the broker restarts 15 min into it."""
    data = yaml.safe_load((SCENARIOS / "office-summer-day.yaml").read_text())
    del data["site"]
    data["events"][0].update(send_at="PT1M", start="PT5M", duration="PT30M")
    data["broker_restart_at"] = ["PT20M"]
    return load_scenario(write_scenario(tmp, data, "restart.yaml")).with_duration("PT40M")


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("broker", [None, "mosquitto"])
async def test_the_broker_restarts_mid_event_and_the_event_still_completes(
    tmp_path: Path, broker: str | None
) -> None:
    sc = _restart_mid_event(tmp_path)
    await replay(
        sc, tmp_path / "run", strategy="optimiser", broker_url=broker, counterfactual=False
    )
    messages = _lines(tmp_path / "run" / "messages.jsonl")
    restarts = [m for m in messages if m["dir"] == "broker"]
    assert [m["ts"] for m in restarts] == [(sc.start + timedelta(minutes=20)).isoformat()]
    answers = [m["msg"] for m in messages if m["dir"] == "site->grid" and "status" in m["msg"]]
    statuses = [a["status"] for a in answers]
    assert statuses[0] == "received" and "completed" in statuses
    # Answers made after the restart crossed the new broker.
    after = [m for m in messages if m["dir"] == "site->grid" and m["ts"] > restarts[0]["ts"]]
    assert after, "nothing reached the grid after the restart"
    reports = _lines(tmp_path / "run" / "reports.jsonl")
    assert reports, "no report after the restart"


async def test_a_broker_given_by_url_cannot_be_restarted_and_says_so(tmp_path: Path) -> None:
    sc = _restart_mid_event(tmp_path)
    with pytest.raises(ValueError, match=r"^broker_restart_at: the replay can restart only"):
        await replay(
            sc, tmp_path / "run", strategy="optimiser", broker_url="mqtt://127.0.0.1:1",
            counterfactual=False,
        )  # fmt: skip


async def test_an_agent_killed_mid_event_is_restarted_on_its_store_and_completes_it(
    tmp_path: Path,
) -> None:
    data = yaml.safe_load((SCENARIOS / "office-summer-day.yaml").read_text())
    del data["site"]
    data["events"][0].update(send_at="PT1M", start="PT5M", duration="PT30M")
    data["agent_kill_at"] = "PT17M30S"
    sc = load_scenario(write_scenario(tmp_path, data, "kill.yaml")).with_duration("PT40M")
    await replay(sc, tmp_path / "run", strategy="optimiser", counterfactual=False)
    messages = _lines(tmp_path / "run" / "messages.jsonl")
    kills = [m for m in messages if m["dir"] == "agent"]
    assert [m["ts"] for m in kills] == [(sc.start + timedelta(minutes=17.5)).isoformat()]
    answers = [
        m["msg"]["status"] for m in messages if m["dir"] == "site->grid" and "status" in m["msg"]
    ]
    assert answers.count("received") == 1 and answers.count("completed") == 1, answers
    reports = _lines(tmp_path / "run" / "reports.jsonl")
    finals = [r for r in reports if r.get("final")]
    assert len(finals) == 1, [r.get("final") for r in reports]
    # The report covers the whole event: intervals before the kill came from the store.
    assert len(finals[0]["intervals"]) == 2
