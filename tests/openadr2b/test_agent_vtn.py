"""The agent with the 2.0b VEN beside the native MQTT link, against openleadr's real VTN:
registered, an import cap event (LOAD_DISPATCH setpoint) opted in and carried out by the
same planner and dispatcher as a native event (the site import in the VTN's own
TELEMETRY_USAGE reports stays under the cap), reports in every interval, and a cancel
honoured (the agent stops holding the cap)."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.clock import WallClock
from tests.conftest import Broker
from tests.grid.live import agent_for, night_timezone, sim_for, small_site_data
from tests.openadr2b.ready import agent_ready
from tests.openadr2b.vtn_process import running_vtn
from vpp.site import BrokerConfig, parse_site

CAP_KW = 90.0


def _values(records: list[dict], since: datetime, until: datetime) -> list[float]:
    return [
        v for r in records for t, v in r["values"] if since <= datetime.fromisoformat(t) < until
    ]


@pytest.mark.timeout(120)
async def test_the_agent_carries_out_a_cap_event_and_its_cancel(
    mosquitto: Broker, openleadr: Path, tmp_path: Path
) -> None:
    clock = WallClock()
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    # 14:00 local whenever the test runs: the small site imports about 150 kW.
    data = small_site_data(night_timezone(datetime.now(UTC), 14))
    async with running_vtn(openleadr, poll_s=1, granularity_s=2, back_s=2) as vtn:
        data["grid"] = {"openadr2b": {"vtn_url": vtn.url, "ven_name": "live-1", "poll_s": 1}}
        site = parse_site(data, tmp_path / "site.yaml")
        async with sim_for(site, clock, broker) as sim:
            agent, dr = agent_for(site, sim, clock, broker, tmp_path / "s.sqlite")
            stop = asyncio.Event()
            run = asyncio.create_task(agent.run(stop))
            try:
                await agent_ready(agent, dr)
                # The VTN has the site import (the simulated meter's first reading is 0).
                await vtn.until(
                    lambda: any(v > CAP_KW + 20 for r in vtn.of("report") for _, v in r["values"]),
                    30,
                    "a report of the site import above the cap",
                )
                start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
                vtn.send(
                    cmd="add_event", ven_name="live-1", signal_name="LOAD_DISPATCH",
                    signal_type="setpoint", event_id="cap-1",
                    intervals=[{"start": start.isoformat(), "duration_s": 120, "value": CAP_KW}],
                )  # fmt: skip
                opt = await vtn.until(lambda: vtn.of("created_event"), 20, "an answer")
                assert [(o["event_id"], o["opt_type"]) for o in opt] == [("cap-1", "optIn")]

                # Held under the cap once the loop has closed (three or four 5 s cycles after
                # the start: the loop sheds only what its commands on their way will not take
                # off, so it closes a cycle later than when it shed everything at once).
                held_from, held_to = start + timedelta(seconds=18), start + timedelta(seconds=28)
                await vtn.until(
                    lambda: _values(vtn.of("report"), held_to, held_to + timedelta(days=1)),
                    40,
                    "reports past the held stretch",
                )
                held = _values(vtn.of("report"), held_from, held_to)
                assert len(held) == 5 and max(held) <= CAP_KW + 3, held

                vtn.send(cmd="cancel", ven_name="live-1", event_id="cap-1")
                cancelled_at = datetime.now(UTC)
                await vtn.until(
                    lambda: len(vtn.of("created_event")) >= 2, 20, "the cancel acknowledged"
                )
                ack = vtn.of("created_event")[1]
                assert (ack["modification"], ack["opt_type"]) == (1, "optIn")
                # The agent stops holding the cap: after its recovery ramp the import is
                # back above it.
                later = cancelled_at + timedelta(days=1)
                await vtn.until(
                    lambda: any(
                        v > CAP_KW + 10 for v in _values(vtn.of("report"), cancelled_at, later)
                    ),
                    40,
                    "the import back above the cap after the cancel",
                )
            finally:
                stop.set()
                await asyncio.wait_for(run, 30)
    # The cap asked for something: the site imported well above it before the event.
    before = _values(vtn.of("report"), start - timedelta(seconds=4), start)
    assert before and min(before) > CAP_KW + 20, before
    # Every 2 s interval from the first report on was reported, each once.
    starts = [datetime.fromisoformat(t) for r in vtn.of("report") for t, _ in r["values"]]
    assert starts == sorted(set(starts))
    assert all(b - a == timedelta(seconds=2) for a, b in itertools.pairwise(starts))
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        (status,) = db.execute("SELECT status FROM events WHERE event_id='oadr2b-cap-1'").fetchone()
    assert status == "cancelled"
