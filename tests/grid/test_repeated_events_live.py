"""Repeated immediate events, each cancelled before the next (as bench/dispatch.py sends them):
every one is planned against its own forecast baseline and answered `opt_in`."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from devices.clock import VirtualClock
from tests.conftest import Broker
from tests.grid.helpers import NOW, event_dict, interval, payload
from tests.grid.live import advance_until, agent_for, sim_for, small_site, watcher
from vpp.dr.planning import floor_step
from vpp.site import BrokerConfig


async def test_immediate_events_after_cancels_are_baselined_and_opted_in(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """Regression (bench/dispatch.py saw `opt_out`, "the plan expects 0 kW"): the control
    cycle asked for by a new immediate event ran before the re-plan, and its stand-in
    baseline (the import at that instant, one step) made the re-plan take the event for an
    already baselined one: no forecast baseline was made, and the delivery was judged
    against that one reading. Each event must get a baseline over all its steps (and the
    rebound window) and `opt_in`."""
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    site = small_site()
    sim = sim_for(site, clock, broker)
    async with sim, watcher(broker, clock) as grid:
        agent, dr = agent_for(site, sim, clock, broker, tmp_path / "s.sqlite")
        stop = asyncio.Event()
        run = asyncio.create_task(agent.run(stop))
        try:
            await advance_until(clock, lambda: dr.plans >= 1)
            for i in range(4):
                eid = f"rep-{i}"
                start = clock.now().replace(microsecond=0)
                ev = event_dict(event_id=eid, intervals=[interval(start.isoformat(), "PT30M", 40)])
                async with clock.hold():
                    await grid.send(payload(ev))
                    await grid.until(lambda e=eid: len(grid.statuses(e)) >= 2)
                assert grid.statuses(eid) == ["received", "opt_in"], [
                    r.get("reason") for r in grid.responses if r.get("event_id") == eid
                ]
                method, profile = agent.store.baseline(eid)
                steps = sorted(profile)
                assert steps[0] == floor_step(start)
                assert steps[-1] >= start + timedelta(minutes=30)  # covers the event and more
                assert "forecast" in method
                await clock.sleep(20)  # the closed loop acts on it
                cancel = event_dict(event_id=eid, modification=1, cancelled=True)
                cancel["intervals"] = ev["intervals"]
                async with clock.hold():
                    await grid.send(payload(cancel))
                    await grid.until(lambda e=eid: "cancelled" in grid.statuses(e))
                await clock.sleep(7)
        finally:
            stop.set()
            await asyncio.wait_for(run, 20)
