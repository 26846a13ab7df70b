"""`vpp fleet replay` on a 3-node NATS cluster of its own (`--broker nats`) with a broker node
down mid-event (the fleet scenario's `broker_down`): three small generated buildings, each a
real agent; the aggregator starts on node 0, the buildings on nodes 1 and 2 in turn, the grid
on node 1. Node 1 is SIGKILLed in the event's second interval, the virtual clock held while
NATS re-elects the JetStream leaders it held; every client fails over to another node. The
grid gets received, opt_in, a report per interval and completed, and the district delivers
its request in every interval."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.fleet.test_fleet_replay import small_sites
from vpp.replay.fleet_command import replay_fleet
from vpp.replay.fleet_scenario import load_fleet_scenario

REQUEST_KW = 40.0


def _fleet_file(tmp: Path, sites: list[Path]) -> Path:
    data = {
        "name": "three-small-on-nats",
        "district_id": "district-n",
        "start": "2026-07-15T14:00:00+02:00",
        "duration": "PT55M",
        "sites": [{"scenario": str(p)} for p in sites],
        "events": [
            {
                "event_id": "d-nats",
                "send_at": "PT5M",
                "signal": "curtail_kw",
                "start": "PT20M",
                "duration": "PT30M",
                "interval": "PT15M",
                "value": REQUEST_KW,
            }
        ],
        "broker_down": [{"node": 1, "at": "PT38M"}],
        "allocation": {"control_period_s": 120},
    }
    path = tmp / "fleet.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def test_fleet_replay_survives_a_broker_node_down(tmp_path: Path) -> None:
    fs = load_fleet_scenario(_fleet_file(tmp_path, small_sites(tmp_path, 3)))
    out = tmp_path / "out"
    summary = await replay_fleet(fs, out, broker_url="nats")
    (ev,) = summary["events"]
    messages = [json.loads(line) for line in (out / "district_messages.jsonl").open()]
    (down,) = [m for m in messages if m["dir"] == "broker"]
    assert down["msg"]["broker_node_down"] == 1
    assert down["ts"] == fs.at(fs.config.broker_down[0].at).isoformat()  # time held
    grid = [
        m["msg"]
        for m in messages
        if m["dir"] == "site->grid" and m["msg"].get("event_id") == "d-nats"
    ]
    # The grid's client, on node 1, got the second report and completed after the kill.
    after = [m for m in messages if m["ts"] > down["ts"] and m["dir"] == "site->grid"]
    assert [m["msg"].get("status") for m in after][-1] == "completed", after
    statuses = [m["status"] for m in grid if "status" in m]
    assert statuses == ["received", "opt_in", "completed"], statuses
    reports = [m for m in grid if "intervals" in m]
    assert [len(r["intervals"]) for r in reports] == [1, 2], reports
    assert ev["min_interval_ratio"] >= 0.95, json.dumps(ev["intervals"], indent=1)
