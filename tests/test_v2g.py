"""The V2G charger kind end to end: the office with one bidirectional charger
(config/sites/office-v2g.yaml) replayed through the real agent on the summer day's
curtailment with the battery lost for the event, so that the closed loop needs the car. The
car gives energy back during the event and still leaves with its departure SoC."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.replay.helpers import ROOT, SCENARIOS, write_scenario
from vpp.replay.runner import STORE, replay
from vpp.replay.scenario import Scenario, load_scenario

SITE = ROOT / "config" / "sites" / "office-v2g.yaml"
DEPART = datetime.fromisoformat("2026-07-15T17:30:00+08:00")
EVENT = (
    datetime.fromisoformat("2026-07-15T14:00:00+08:00"),
    datetime.fromisoformat("2026-07-15T16:00:00+08:00"),
)


def _points(store: Path, point: str, start: datetime, end: datetime) -> list[tuple[float, float]]:
    """(ts, min) of the V2G charger's `point` per stored window in [start, end)."""
    with sqlite3.connect(store) as db:
        return db.execute(
            "SELECT ts, min FROM telemetry WHERE device_id='v2g1' AND point=? AND ts>=? AND ts<?"
            " ORDER BY ts",
            (point, start.timestamp(), end.timestamp()),
        ).fetchall()


def _scenario(tmp: Path) -> Scenario:
    """The summer day from noon to just after the car leaves (17:30): the curtailment at
    14:00-16:00 with the battery offline through it, no other cars. The site is the bundled
    one with the car plugged in from the scenario's start."""
    site = yaml.safe_load(SITE.read_text())
    car = next(d for d in site["devices"] if d["id"] == "v2g1")
    car["sim"]["sessions"][0]["arrival"] = "2026-07-15T12:00:00+08:00"
    car["ev"]["departure_after_h"] = 5.5  # the agent first sees it at 12:00
    (tmp / "site.yaml").write_text(yaml.safe_dump(site, sort_keys=False))
    data = yaml.safe_load((SCENARIOS / "office-summer-day.yaml").read_text())
    del data["ev_arrivals"]
    data.update(site=str(tmp / "site.yaml"), start="2026-07-15T12:00:00+08:00")
    data["events"][0].update(send_at="PT5M", start="PT2H")
    data["faults"] = [{"device": "bat1", "from": "PT1H55M", "to": "PT4H", "offline": True}]
    return load_scenario(write_scenario(tmp, data, "v2g.yaml")).with_duration("PT5H45M")


@pytest.mark.timeout(600)
async def test_curtailment_uses_the_v2g_car_and_keeps_its_departure_soc(tmp_path: Path) -> None:
    sc = _scenario(tmp_path)
    assert sc.start + timedelta(hours=2) == EVENT[0]
    out = tmp_path / "out"
    summary = await replay(sc, out, strategy="optimiser")
    store = out / STORE

    power = _points(store, "power_kw", *EVENT)
    assert len(power) >= 100, "the charger was read through the event"
    discharged = [kw for _, kw in power if kw < -1.0]
    assert discharged, f"the car never discharged for the curtailment: {power[:5]}"
    # Its SoC never went under what the driver asked for, and it left with at least that.
    soc = _points(store, "vehicle_soc_pct", EVENT[0], DEPART)
    assert soc and min(v for _, v in soc) >= 70.0 - 0.1, min(soc, key=lambda r: r[1])
    last = _points(store, "vehicle_soc_pct", DEPART.replace(minute=20), DEPART)
    assert last and last[-1][1] >= 70.0 - 0.1, last
    ev = summary["events"][0]
    assert ev["status"] == "completed"
    assert json.loads((out / "summary.json").read_text())["events"][0] == ev
