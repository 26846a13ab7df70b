"""The site file's `store.retention_days` is acted on by the running agent: at its first
telemetry tick, then once a day, what is older goes and the rest stays (real agent, simulated
site over Modbus, real Mosquitto, virtual clock)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from devices.clock import VirtualClock
from tests.conftest import Broker
from tests.grid.helpers import NOW
from tests.grid.live import advance_until, agent_for, sim_for, small_site_data, watcher
from vpp.site import BrokerConfig, parse_site
from vpp.store.store import Store


def _meter_days(path: Path) -> list[int]:
    """Whole days before NOW of the meter's stored power windows, each day once."""
    store = Store(path)
    try:
        rows = store.rows(
            "SELECT DISTINCT CAST((? - ts) / 86400 AS INTEGER) FROM telemetry"
            " WHERE device_id='meter' AND point='old_kw' ORDER BY 1",
            (NOW.timestamp(),),
        )
        return [int(d) for (d,) in rows]
    finally:
        store.close()


async def test_the_agent_prunes_what_is_older_than_the_retention(
    mosquitto: Broker, tmp_path: Path
) -> None:
    path = tmp_path / "s.sqlite"
    store = Store(path)
    for back in (100, 61, 59, 10):  # the days before NOW that the store already holds
        store.add_telemetry(NOW - timedelta(days=back, hours=-1), "meter", {"old_kw": 1.0})
    store.save_event(NOW - timedelta(days=100), "old", 0, {"event_id": "old"}, "completed")
    store.close()
    assert _meter_days(path) == [9, 58, 60, 99]

    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    data = small_site_data()
    data["store"] = {**data.get("store", {}), "retention_days": 60}
    site = parse_site(data, Path("retention-site.yaml"))
    sim = sim_for(site, clock, broker)
    async with sim, watcher(broker, clock) as grid:
        agent, _ = agent_for(site, sim, clock, broker, path)
        stop = asyncio.Event()
        run = asyncio.create_task(agent.run(stop))
        try:
            await advance_until(clock, lambda: len(grid.telemetry) >= 2)
            kept = [(d, n) for d, n in agent.store.table_counts().items() if d == "events"]
        finally:
            stop.set()
            await asyncio.wait_for(run, 20)
    assert kept == [("events", 1)]  # the settlement record stays
    assert _meter_days(path) == [9, 58]
