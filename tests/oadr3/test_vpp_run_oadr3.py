"""`vpp run SITE` runs the links the site file names: with `grid.openadr3`, the real process
registers with the test VTN, takes the VTN's event into its store and answers it, beside the
native MQTT link, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from tests.conftest import Broker
from tests.oadr3.live import cap_event, program
from tests.oadr3_vtn.server import VEN_CLIENT, serve

ROOT = Path(__file__).resolve().parents[2]
OFFICE = ROOT / "config" / "sites" / "office.yaml"


def _statuses(store: Path, event_id: str) -> list[str]:
    if not store.exists():
        return []
    try:
        with sqlite3.connect(store) as db:
            rows = db.execute(
                "SELECT status FROM responses WHERE event_id=? ORDER BY id", (event_id,)
            ).fetchall()
    except sqlite3.OperationalError:  # the agent is still creating its tables
        return []
    return [r[0] for r in rows]


def test_vpp_run_with_openadr3_registers_and_answers_the_vtns_event(
    fresh_mosquitto: Broker, tmp_path: Path
) -> None:
    with serve() as vtn:
        data = yaml.safe_load(OFFICE.read_text())
        data.setdefault("grid", {})["openadr3"] = {
            "vtn_url": vtn.base_url,
            "client_id": VEN_CLIENT[0],
            "client_secret_env": "VPP_OADR3_SECRET",
            "ven_name": "office-1",
            "poll_s": 1,
        }
        site_file = tmp_path / "office-oadr3.yaml"
        site_file.write_text(yaml.safe_dump(data))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "VPP_OADR3_SECRET": VEN_CLIENT[1]}
        args = [sys.executable, "-m", "vpp", "run", str(site_file)]
        args += ["--broker", fresh_mosquitto.url, "--data-dir", str(tmp_path)]
        agent = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        store = tmp_path / "office-1.sqlite"
        try:
            deadline = time.monotonic() + 60
            while not vtn.objects["resources"] and time.monotonic() < deadline:
                time.sleep(0.2)
            (ven,) = vtn.objects["vens"].values()
            assert ven["venName"] == "office-1"
            start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
            event = cap_event(vtn, program(vtn)["id"], start, [300.0])
            native = f"oadr3.{event['id']}"
            # No device answers here (nothing serves the office's ports): the agent stores
            # and answers the event; it cannot plan blind, so no opt_in.
            while not _statuses(store, native) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _statuses(store, native)[:1] == ["received"]
        finally:
            agent.send_signal(signal.SIGTERM)
            _, err = agent.communicate(timeout=30)
        assert agent.returncode == 0, err.decode()[-2000:]
    assert vtn.bad_exchanges() == []
