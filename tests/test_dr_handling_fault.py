"""A valid event whose handling fails inside the running agent (here the store refuses to
save it, as a full disk would) is logged and answered with one `rejected`; the agent keeps
running and carries out the next event (DrController, simulated site, virtual clock, real
Mosquitto)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from devices.clock import VirtualClock
from tests.conftest import Broker
from tests.grid.helpers import NOW, event_dict, interval, payload
from tests.grid.live import advance_until, agent_for, sim_for, small_site, watcher
from vpp.site import BrokerConfig


async def test_an_event_whose_handling_fails_is_rejected_and_the_agent_goes_on(
    mosquitto: Broker, tmp_path: Path
) -> None:
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    site = small_site()
    sim = sim_for(site, clock, broker)
    async with sim, watcher(broker, clock) as grid:
        agent, dr = agent_for(site, sim, clock, broker, tmp_path / "s.sqlite")
        store = dr.events.store
        save_event = store.save_event

        def failing_save(ts: Any, event_id: str, *args: Any, **kw: Any) -> None:
            if event_id == "doomed":
                raise OSError("database or disk is full")
            save_event(ts, event_id, *args, **kw)

        store.save_event = failing_save  # type: ignore[method-assign]
        stop = asyncio.Event()
        run = asyncio.create_task(agent.run(stop))
        try:
            await advance_until(clock, lambda: dr.plans >= 1 and len(grid.telemetry) >= 2)
            t0 = clock.now().replace(second=0, microsecond=0) + timedelta(minutes=30)
            ivs = [interval(t0.isoformat(), "PT30M", 20)]
            async with clock.hold():
                await grid.send(payload(event_dict(event_id="doomed", intervals=ivs)))
                await grid.until(lambda: grid.statuses("doomed"))
            answers = [r for r in grid.responses if r.get("event_id") == "doomed"]
            assert [a["status"] for a in answers] == ["rejected"]
            assert "could not handle" in answers[0]["reason"], answers[0]
            assert "doomed" not in dr.events.states
            assert not run.done(), "the agent stopped"

            async with clock.hold():
                await grid.send(payload(event_dict(event_id="next", intervals=ivs)))
                await grid.until(lambda: "opt_in" in grid.statuses("next"), 30)
            assert grid.statuses("next") == ["received", "opt_in"]
            assert not run.done()
        finally:
            stop.set()
            await asyncio.wait_for(run, 20)
