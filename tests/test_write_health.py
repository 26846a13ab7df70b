"""A device that answers every write with a Modbus exception (its reads still answer) is left
out of control like an offline device, and its health says why (issue 13, point 6). The real
agent and the small site's simulators over Modbus TCP, on the virtual clock; the battery starts
refusing writes when a 0 kW import cap begins. And the health's way there and back, with the
command writer, the poller and the Modbus driver against a real pymodbus server."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from devices.clock import VirtualClock
from devices.health import HealthState
from devices.modbus_driver import ModbusDriver
from devices.poller import Poller
from tests.conftest import Broker
from tests.devices.conftest import bundled
from tests.devices.profile_server import ProfileServer
from tests.small_site import small_scenario
from vpp.control.types import Command
from vpp.control.writer import CommandWriter
from vpp.replay.runner import STORE, replay
from vpp.store.store import Store

# Refused writes in a row that make a device offline (the poller's `offline_after`), and the
# control cycles that may take: a write is due only when the loop moves the device.
REFUSED_TO_LEAVE_OUT = 2
CYCLES_TO_LEAVE_OUT = 6


@pytest.mark.timeout(300)
async def test_a_device_refusing_writes_is_left_out_and_its_health_says_why(
    fresh_mosquitto: Broker, tmp_path: Path
) -> None:
    fault = {"device": "bat1", "from": "PT15M", "write_exception_code": 4}
    sc = small_scenario(tmp_path, "import_cap_kw", 0.0, faults=[fault])
    out = tmp_path / "out"
    await replay(
        sc, out, strategy="optimiser", broker_url=fresh_mosquitto.url, counterfactual=False
    )
    ev = sc.final_events()[0]
    control_s = sc.site.config.periods.control_s
    with sqlite3.connect(out / STORE) as db:
        refused = [
            t
            for (t,) in db.execute(
                "SELECT ts FROM commands WHERE device_id='bat1' AND ok=0 AND ts>=? ORDER BY ts",
                (ev.start.timestamp(),),
            )
        ]
        health = db.execute(
            "SELECT ts, state, reason, exception_code FROM health WHERE device_id='bat1'"
            " AND ts>=? ORDER BY ts",
            (ev.start.timestamp(),),
        ).fetchall()
        writes = db.execute(
            "SELECT COUNT(*) FROM commands WHERE device_id='bat1' AND ts>=? AND ts<?",
            (ev.start.timestamp(), ev.end.timestamp()),
        ).fetchone()[0]
    assert refused, "the loop never wrote to the battery in the event"
    first_refused = refused[0]
    offline = [h for h in health if h[1] == "offline"]
    assert offline, health
    ts, _, reason, code = offline[0]
    assert ts - first_refused <= CYCLES_TO_LEAVE_OUT * control_s, (first_refused, health)
    assert len([t for t in refused if t <= ts]) <= REFUSED_TO_LEAVE_OUT, refused
    assert "write" in reason and code == 4, reason
    # Left out (of dispatch, and so of the plan): written to only at the odd retry, not every
    # cycle of the event; the reports say it was out of control, and why.
    cycles = (ev.end - ev.start) / timedelta(seconds=control_s)
    assert writes <= cycles / 4, writes
    reports = [
        json.loads(line)["msg"]
        for line in (out / "messages.jsonl").read_text().splitlines()
        if json.loads(line)["topic"].endswith("/reports")
    ]
    final = reports[-1]
    assert final["final"] is True
    for iv in final["intervals"]:
        notes = " ".join(iv["missing"]["notes"])
        assert "out of control: bat1 (offline: writes refused: exception code 4" in notes, notes


async def test_refused_writes_take_a_device_offline_until_one_is_taken(tmp_path: Path) -> None:
    clock = VirtualClock()
    battery = bundled("sunspec-battery")
    server = await ProfileServer(battery, clock).start()
    driver = ModbusDriver("bat", battery, host="127.0.0.1", port=server.port, clock=clock)
    store = Store(tmp_path / "store.sqlite")
    async with Poller([driver], clock=clock, period_s=1.0, max_backoff_s=4.0) as poller:
        writer = CommandWriter({"bat": driver}, clock, store, health=poller)

        def offline(device_id: str) -> bool:
            return not poller.health(device_id).usable

        await clock.sleep_until(2.5)
        assert poller.health("bat").state is HealthState.online
        server.write_exception_code = 4
        await writer.write([Command("bat", "power_setpoint_kw", -10.0, "test")])
        h = poller.health("bat")
        assert h.state is HealthState.degraded and h.reason.startswith("writes refused: ")
        await writer.write(writer.reassert(offline))  # the refused command, again
        h = poller.health("bat")
        assert h.state is HealthState.offline and h.exception_code == 4, h
        assert "exception code 4" in h.reason
        # Its reads still answer; it stays out until the retry (2 periods here), then is usable
        # again so that the next write tries it.
        await clock.sleep(1.5)
        assert poller.health("bat").state is HealthState.offline
        assert writer.reassert(offline) == []
        await clock.sleep(2.0)
        assert poller.health("bat").state is HealthState.degraded
        server.write_exception_code = None
        await writer.write(writer.reassert(offline))
        assert poller.health("bat").state is HealthState.online
        assert server.get("power_setpoint_kw") == -10.0
    store.close()
    await server.stop()
