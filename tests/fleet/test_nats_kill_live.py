"""The district on a 3-node NATS cluster (MQTT 3.1.1 over JetStream), on the virtual clock:
the aggregator connects to node 0 (its failover list names nodes 1 and 2), the emulated
sites to nodes 1 and 2, the grid to node 1. Node 0 is SIGKILLed in the event's second
interval; the aggregator resumes both its sessions on another node and nothing is lost:
the grid gets received, opt_in, one report per interval and completed, every site its event
and the district's report delivers what was asked in every interval."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from devices.clock import VirtualClock
from tests.fleet.live import DISTRICT, FIVE, NOW, Grid, curtail, grid, specs
from vpp.fleet.aggregator import Aggregator
from vpp.fleet.config import FleetConfig
from vpp.fleet.emulator import Emulator
from vpp.fleet.nats_cluster import NatsCluster
from vpp.site import BrokerConfig


async def _until(
    clock: VirtualClock, agg: Aggregator, check: Callable[[], bool], wall_s: float = 40.0
) -> None:
    """Let simulated time run in 5 s steps while both of the aggregator's links are
    connected (a few wall milliseconds held at each, for messages in flight); while one is
    not, in 0.25 s steps with a wall pause (its reconnect backoff is on the clock, JetStream
    elects the leaders the killed node held in wall seconds), until `check()`."""
    end = time.monotonic() + wall_s
    while not check():
        assert time.monotonic() < end, f"not true within {wall_s} s wall at {clock.now()}"
        if agg.up.connected.is_set() and agg.down.connected.is_set():
            async with clock.hold():
                await asyncio.sleep(0.03)
            if not check():
                await clock.sleep(5.0)
        else:
            await asyncio.sleep(0.05)
            await clock.sleep(0.25)


def _report_lengths(g: Grid) -> list[int]:
    """How many intervals the grid's reports of the event cover, each length once."""
    return sorted({len(r["intervals"]) for r in g.reports if r.get("event_id") == "d-n"})


def _distinct(g: Grid, event_id: str) -> list[str]:
    """The grid's responses to `event_id`, QoS 1 redeliveries of one answer counted once."""
    seen: list[tuple[str, str]] = []
    for r in g.responses:
        key = (r["status"], str(r.get("ts")))
        if r.get("event_id") == event_id and key not in seen:
            seen.append(key)
    return [s for s, _ in seen]


async def test_district_event_survives_the_aggregators_node_killed(
    nats: NatsCluster, tmp_path: Path
) -> None:
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    sites = specs(4)  # 40 kW each at costs 1..4: 100 kW is b1 40, b2 40, b3 20
    on_1 = BrokerConfig.from_url(nats.url_from(1))
    on_2 = BrokerConfig.from_url(nats.url_from(2))
    fleet = FleetConfig.model_validate(
        {
            "district_id": DISTRICT,
            "broker": BrokerConfig.from_url(nats.url_from(0)).model_dump(),
            "sites": [{"site_id": s.site_id} for s in sites],
            "allocation": {"control_period_s": 60, "max_site_share": 1.0},  # least cost
            "store": tmp_path / "district.sqlite",
            "data_dir": tmp_path,
        }
    )
    async with (
        Emulator(sites[:2], on_1, clock) as emu1,
        Emulator(sites[2:], on_2, clock) as emu2,
        grid(on_1, clock) as g,
    ):
        await asyncio.wait_for(asyncio.gather(emu1.started(), emu2.started()), 20)
        agg = Aggregator(fleet, clock)
        stop = asyncio.Event()
        task = asyncio.create_task(agg.run(stop))
        try:
            book = agg.book.sites
            await _until(clock, agg, lambda: all(s.offer is not None for s in book.values()))
            start = clock.now().replace(second=0, microsecond=0) + 2 * FIVE
            await g.send(curtail("d-n", 100.0, start, n=4))
            await _until(clock, agg, lambda: "opt_in" in _distinct(g, "d-n"))
            received = {**emu1.sites, **emu2.sites}
            await _until(clock, agg, lambda: clock.now() >= start + FIVE + FIVE / 2)
            assert agg.down.connects == 1 and agg.up.connects == 1
            nats.kill(0)
            # Each QoS 1 subscription is a JetStream consumer of its own: after the kill the
            # grid's reports may come seconds after `completed` (seen: 2.7 s), so wait for both.
            await _until(
                clock,
                agg,
                lambda: "completed" in _distinct(g, "d-n") and _report_lengths(g) == [1, 2, 3, 4],
                wall_s=50,
            )
            # Both links moved on to a live node and kept their sessions.
            assert agg.up.connects >= 2 and agg.down.connects >= 2
            assert agg.up.address != nats.nodes[0].address
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
    assert _distinct(g, "d-n") == ["received", "opt_in", "completed"]
    asked = {
        s: [iv.value for iv in e.received[-1].intervals] for s, e in received.items() if e.received
    }
    assert asked == {"b1": [40.0] * 4, "b2": [40.0] * 4, "b3": [20.0] * 4}
    reports = [r for r in g.reports if r.get("event_id") == "d-n"]
    assert _report_lengths(g) == [1, 2, 3, 4]
    final = max(reports, key=lambda r: len(r["intervals"]))
    delivered = [iv["delivered_kw"] for iv in final["intervals"]]
    assert all(x >= 95.0 for x in delivered), delivered  # each site's every report came up
    assert final["delivered_ratio"] >= 0.95
