"""`vpp run`: the agent a site runs answers the grid (DR attached), and stops on SIGTERM.

In process on the virtual clock, the same composition `vpp run` uses (`vpp.service`) plans and
opts in to an event against the simulated office; as a real process on the wall clock, `vpp
run` answers `vpp event send` and exits cleanly on SIGTERM with its status retained offline.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt

from devices.clock import VirtualClock
from tests.conftest import Broker
from vpp.grid.client import build_event
from vpp.replay.harness import Operator, TimedEvent
from vpp.service import site_agent
from vpp.simsite import rebind, simulated_site
from vpp.site import BrokerConfig, load_site

ROOT = Path(__file__).resolve().parent.parent
OFFICE = ROOT / "config" / "sites" / "office.yaml"
START = datetime(2026, 7, 15, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


async def test_the_site_agent_plans_and_opts_in(fresh_mosquitto: Broker, tmp_path: Path) -> None:
    clock = VirtualClock(START)
    site = load_site(OFFICE)
    broker = BrokerConfig(host=fresh_mosquitto.host, port=fresh_mosquitto.port)
    sim = simulated_site(site, clock, broker=(broker.host, broker.port), any_port=True)
    event = build_event(
        now=START,
        curtail_kw=60.0,
        start=START + timedelta(minutes=30),
        duration="PT30M",
        interval="PT15M",
        event_id="run-1",
    )
    operator = Operator(clock, broker, site.id)
    async with sim:
        agent = site_agent(
            rebind(site, sim.endpoints()),
            clock,
            broker=broker,
            store_path=tmp_path / "s.sqlite",
            client_id="t-run",
            offers=False,  # tests/test_offers_live.py tests them
        )
        stop = asyncio.Event()
        ready = asyncio.Event()
        op = asyncio.create_task(
            operator.run(
                [TimedEvent(START + timedelta(minutes=2), json.loads(event.to_json()))], ready
            )
        )
        await ready.wait()
        run = asyncio.create_task(agent.run(stop))
        for _ in range(60):  # bounded: 60 × 10 virtual s
            if len(operator.responses) >= 2:
                break
            await clock.sleep(10)
        stop.set()
        await asyncio.wait_for(run, 30)
        op.cancel()
    statuses = [r["status"] for r in operator.responses]
    assert statuses[:2] == ["received", "opt_in"]
    opt_in = operator.responses[1]
    assert len(opt_in["expected_kw"]) == 2 and min(opt_in["expected_kw"]) > 0
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        (status,) = db.execute("SELECT status FROM events WHERE event_id='run-1'").fetchone()
    assert status == "opt_in"


def test_vpp_run_answers_the_grid_and_stops_on_sigterm(
    fresh_mosquitto: Broker, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    url = fresh_mosquitto.url
    agent = subprocess.Popen(
        [sys.executable, "-m", "vpp", "run", str(OFFICE), "--broker", url, "--data-dir", tmp_path],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # The agent announces itself (retained status) once subscribed to its events.
        assert asyncio.run(asyncio.wait_for(_status(fresh_mosquitto, True), 30))["online"]
        # No device answers here (nothing serves the office's ports): the agent still
        # stores and answers the event; it cannot plan blind, so no opt_in yet, and `send`
        # waits all of --wait-s (`received` comes at once by contract).
        sent = subprocess.run(
            [
                *(sys.executable, "-m", "vpp", "event", "send", "--site", "office-1"),
                *("--curtail-kw", "50", "--duration", "PT30M", "--event-id", "cli-1"),
                *("--broker", url, "--wait-s", "2"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        answers = [json.loads(line) for line in sent.stdout.splitlines() if line.strip()]
        assert [a["status"] for a in answers][:1] == ["received"], sent.stderr
        assert answers[0]["event_id"] == "cli-1"
    finally:
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=30)
    assert agent.returncode == 0, err.decode()[-2000:]
    assert (tmp_path / "office-1.sqlite").exists()

    status = asyncio.run(asyncio.wait_for(_status(fresh_mosquitto, False), 10))
    assert status["online"] is False


async def _status(broker: Broker, online: bool) -> dict[str, object]:
    """The site's status once it says `online` (retained, so a late subscriber sees it)."""
    async with aiomqtt.Client(broker.host, broker.port) as c:
        await c.subscribe("vpp/office-1/status", qos=1)
        async for m in c.messages:
            doc = dict(json.loads(bytes(m.payload)))
            if doc.get("online") is online:
                return doc
    raise AssertionError("the status topic closed")
