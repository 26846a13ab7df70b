"""The fleet scenario file: the bundled district loads; bad input is one line naming the
field (also from `vpp fleet replay`, exit 2, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from vpp.replay.fleet_scenario import FleetScenarioError, load_fleet_scenario

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "config" / "fleets" / "district-afternoon.yaml"


def test_the_bundled_district_loads() -> None:
    fs = load_fleet_scenario(BUNDLED)
    assert len(fs.sites) == 8
    assert len({sc.site.id for sc in fs.sites}) == 8
    assert all(sc.start == fs.start and sc.duration == fs.duration for sc in fs.sites)
    assert all(not sc.event_messages() for sc in fs.sites)
    assert [e.event.signal for e in fs.events()] == ["curtail_kw", "import_cap_kw"]
    # Like-day history for the sites' reported baselines (x_of_y needs five like days).
    assert all(sc.config.history_days >= 7 for sc in fs.sites)


def _broken(tmp: Path, change: dict[str, Any]) -> Path:
    data = yaml.safe_load(BUNDLED.read_text())
    data["sites"] = [{**s, "scenario": str(BUNDLED.parent / s["scenario"])} for s in data["sites"]]
    for key, value in change.items():
        path, leaf = key.split(".")[:-1], key.split(".")[-1]
        node: Any = data
        for p in path:
            node = node[int(p)] if p.isdigit() else node[p]
        node[int(leaf) if leaf.isdigit() else leaf] = value
    out = tmp / "broken.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"sites.0.max_kw": -5}, "sites[0].max_kw"),
        ({"agent_kills.0.site": "nobody"}, "agent_kills[0].site: no site 'nobody'"),
        ({"faults.0.device": "bat9"}, "faults[0].device: site 'hotel-3' has no device 'bat9'"),
        ({"events.0.signal": "price"}, "events[0].signal: a district takes curtail_kw"),
        ({"sites.1.scenario": "/nowhere.yaml"}, "sites[1].scenario:"),
        ({"broker_down": ["PT1H"]}, "broker_down[0]"),
        ({"broker_down": [{"node": 3, "at": "PT1H"}]}, "broker_down[0].node"),
        ({"district_id": "hotel-1"}, "is the district's own id"),
    ],
)
def test_bad_input_is_one_line_naming_the_field(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    path = _broken(tmp_path, change)
    with pytest.raises(FleetScenarioError) as e:
        load_fleet_scenario(path)
    assert expected in str(e.value)
    assert str(e.value).startswith(str(path))


def test_vpp_fleet_replay_refuses_in_one_line(tmp_path: Path) -> None:
    path = _broken(tmp_path, {"sites.0.max_kw": "lots"})
    r = subprocess.run(
        [sys.executable, "-m", "vpp", "fleet", "replay", str(path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "sites[0].max_kw" in lines[0], r.stderr
    assert not (tmp_path / "o").exists()
