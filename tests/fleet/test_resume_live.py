"""An aggregator killed mid-event and started again on the same store resumes the event:
no second `received` or `opt_in` upward, no event sent again to a site, the allocation kept,
and the event reported and completed (real Mosquitto, virtual clock)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from devices.clock import VirtualClock
from tests.conftest import Broker
from tests.fleet.live import FIVE, NOW, advance, curtail, district, fleet, grid, settle, specs
from vpp.fleet.aggregator import Aggregator
from vpp.fleet.emulator import Emulator
from vpp.fleet.store import FleetStore
from vpp.grid.ledger import EventState
from vpp.grid.parse import Rejection, parse_event
from vpp.site import BrokerConfig


async def test_killed_aggregator_resumes_on_its_store(mosquitto: Broker, tmp_path: Path) -> None:
    clock = VirtualClock(NOW)
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    sites = specs(4)
    cfg = fleet(mosquitto, tmp_path, sites)
    async with Emulator(sites, broker, clock) as emu, grid(broker, clock) as g:
        await emu.started()
        first = asyncio.create_task(Aggregator(cfg, clock).run())
        await advance(clock, lambda: bool(g.offers))
        start = NOW + 2 * FIVE
        await g.send(curtail("d-4", 100.0, start))
        await advance(clock, lambda: "opt_in" in g.statuses("d-4"), virtual_s=60)
        await advance(clock, lambda: clock.now() >= start + FIVE + FIVE / 2)
        assert len(g.reports) == 1
        first.cancel()  # killed: no clean shutdown
        await asyncio.gather(first, return_exceptions=True)
        await settle(clock)

        kept = FleetStore(cfg.store)
        allocated = dict(kept.rows("SELECT site_id, values_kw FROM allocations"))
        kept.close()
        assert allocated == {
            "b1": "[40.0, 40.0, 40.0, 40.0]",
            "b2": "[40.0, 40.0, 40.0, 40.0]",
            "b3": "[20.0, 20.0, 20.0, 20.0]",
        }

        again = Aggregator(cfg, clock)
        stop = asyncio.Event()
        second = asyncio.create_task(again.run(stop))
        try:
            await advance(clock, lambda: "completed" in g.statuses("d-4"), virtual_s=3600)
            assert g.statuses("d-4") == ["received", "opt_in", "completed"]
            for site_id, site in emu.sites.items():
                mods = [e.modification for e in site.received]
                assert mods == ([0] if site_id != "b4" else []), (site_id, mods)
            assert [len(r["intervals"]) for r in g.reports] == [1, 2, 3, 4]
            assert [iv["delivered_kw"] for iv in g.reports[-1]["intervals"]] == [100.0] * 4
        finally:
            stop.set()
            await asyncio.wait_for(second, 10)


async def test_event_received_before_a_kill_is_planned_on_restart(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """The store holds a district event answered `received` and nothing more (killed before
    it was allocated): the restarted aggregator allocates it once the sites' offers are in
    and answers `opt_in` only (no second `received`)."""
    event = parse_event(curtail("d-6", 60.0, NOW + 2 * FIVE), NOW)
    assert not isinstance(event, Rejection)
    store = FleetStore(tmp_path / "district.sqlite")
    store.put_event(EventState(event, "received"))
    store.close()
    async with district(mosquitto, tmp_path, specs(3)) as d:
        await advance(d.clock, lambda: "opt_in" in d.grid.statuses("d-6"), virtual_s=60)
        assert d.grid.statuses("d-6") == ["opt_in"]
        await advance(d.clock, lambda: bool(d.emu.sites["b2"].received))
        assert d.values("b1") == [[40.0] * 4] and d.values("b2") == [[20.0] * 4]
