"""A kill during a broker outage loses no report (issue 13, point 2), with real processes:
Mosquitto with persistence, `vpp sim`, `vpp run`, on the wall clock.

The agent opts in to a 30 s event that starts 10 s ahead (it opts in within about 5 s at
load 15-18); the broker stops before the event ends, so the final report and `completed` are
made while it is away; the agent is killed (SIGKILL) once `completed` is stored. The broker
and then the agent start again on the same port and the same data directory: the grid,
whose persistent session was kept by the broker, receives the report and `completed`, each
exactly once, and `received` and `opt_in` no second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml

from tests.conftest import Broker, free_port, start_mosquitto
from tests.grid.helpers import event_dict, interval
from tests.grid.live import SITE_ID, night_timezone, small_site_data

ROOT = Path(__file__).resolve().parent.parent
EID = "kill-1"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


class Grid:
    """The grid side: a persistent session (clean_session=False) that records the site's
    responses and reports, and reconnects while its broker is away."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.responses: list[dict[str, Any]] = []
        self.reports: list[dict[str, Any]] = []
        self.online = False
        self.client: aiomqtt.Client | None = None

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier="grid-kill-test", clean_session=False
                ) as c:
                    for leaf in ("responses", "reports", "status"):
                        await c.subscribe(f"vpp/{SITE_ID}/{leaf}", qos=1)
                    self.client = c
                    async for m in c.messages:
                        doc = json.loads(bytes(m.payload))
                        leaf = str(m.topic).rsplit("/", 1)[1]
                        if leaf == "status":
                            self.online = bool(doc.get("online"))
                        elif leaf == "responses":
                            self.responses.append(doc)
                        else:
                            self.reports.append(doc)
            except aiomqtt.MqttError:
                self.client = None
                self.online = False
                await asyncio.sleep(0.2)

    def statuses(self) -> list[str]:
        return [r["status"] for r in self.responses if r.get("event_id") == EID]


async def _until(check: Any, wall_s: float, what: str) -> None:
    for _ in range(int(wall_s / 0.1)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {wall_s} s")


def _stored_completed(db: Path) -> bool:
    if not db.exists():
        return False
    with contextlib.closing(sqlite3.connect(db, timeout=5)) as c:
        rows = c.execute(
            "SELECT COUNT(*) FROM responses WHERE event_id=? AND status='completed'", (EID,)
        ).fetchone()
    return bool(rows[0])


def _sim(site_file: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "vpp", "sim", str(site_file), "--json", "--any-port"]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def _agent(site_file: Path, port: int, data: Path, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "vpp", "--json-logs", "run", str(site_file)]
    cmd += ["--broker", f"mqtt://127.0.0.1:{port}", "--data-dir", str(data)]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=log.open("ab"))


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(420)
async def test_a_kill_during_a_broker_outage_loses_no_report(tmp_path: Path) -> None:
    port = free_port()
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    broker: Broker = start_mosquitto(broker_dir, port, persistence=True)
    data = tmp_path / "data"
    log = tmp_path / "agent.log"
    site = small_site_data(night_timezone(datetime.now(UTC)))
    # 10 s telemetry windows: the 30 s interval's report has measured rows of its own.
    site["store"]["telemetry_resolution_s"] = 10
    sim_file = tmp_path / "site.yaml"
    sim_file.write_text(yaml.safe_dump(site))
    sim = _sim(sim_file)
    grid = Grid(port)
    grid_task = asyncio.create_task(grid.run())
    agent: subprocess.Popen[bytes] | None = None
    try:
        assert sim.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(sim.stdout.readline), 60)
        endpoints = {d["id"]: d for d in json.loads(line)["devices"]}
        for d in site["devices"]:
            d["host"], d["port"] = endpoints[d["id"]]["host"], endpoints[d["id"]]["port"]
        run_file = tmp_path / "run.yaml"
        run_file.write_text(yaml.safe_dump(site))

        agent = _agent(run_file, port, data, log)
        await _until(lambda: grid.online, 60, "agent online")
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=10)
        event = event_dict(event_id=EID, intervals=[interval(start.isoformat(), "PT30S", 20)])
        await _until(lambda: grid.client is not None, 10, "grid connected")
        assert grid.client is not None
        await grid.client.publish(f"vpp/{SITE_ID}/events", json.dumps(event), qos=1)
        await _until(lambda: "opt_in" in grid.statuses(), 60, "opt_in")
        assert datetime.now(UTC) < start + timedelta(seconds=20), "too slow to test the outage"

        # The broker goes away before the event's end: its report and `completed` are made
        # while the agent cannot send them. Then the agent dies without a word.
        _stop(broker.process)
        db = data / f"{SITE_ID}.sqlite"
        await _until(lambda: _stored_completed(db), 150, "completed stored")
        await asyncio.sleep(0.5)
        _stop(agent, signal.SIGKILL)
        assert agent.returncode == -signal.SIGKILL

        broker = start_mosquitto(broker_dir, port, persistence=True)
        await _until(lambda: grid.client is not None, 20, "grid back")
        agent = _agent(run_file, port, data, log)
        await _until(lambda: "completed" in grid.statuses(), 60, "completed after restart")
        await asyncio.sleep(5)  # a duplicate would come now
        _stop(agent)
        assert agent.returncode == 0, log.read_text()[-3000:]
    finally:
        for proc in (agent, sim):
            if proc is not None:
                _stop(proc, signal.SIGKILL)
        grid_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await grid_task
        _stop(broker.process)

    assert grid.statuses() == ["received", "opt_in", "completed"]
    reports = [r for r in grid.reports if r.get("event_id") == EID]
    assert len(reports) == 1, reports
    assert [iv["start"] for iv in reports[0]["intervals"]] == [start.isoformat()]
    assert reports[0]["intervals"][0]["actual_kw"] is not None
