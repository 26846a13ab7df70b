"""The aggregator with five emulated sites through a real Mosquitto, on the virtual clock:
a district curtailment split by cost, answered and reported upward as a site would, settled
per interval; a malformed district event rejected as a site rejects it."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

from devices.clock import VirtualClock
from tests.conftest import Broker
from tests.fleet.live import DISTRICT, FIVE, NOW, advance, curtail, fleet, grid, specs
from vpp.fleet.aggregator import Aggregator
from vpp.fleet.emulator import Emulator
from vpp.site import BrokerConfig


async def test_district_curtailment_is_split_by_cost_reported_and_settled(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """100 kW over sites of 40 kW at costs 1..5: b1 40, b2 40, b3 20, b4 and b5 nothing.
    The grid sees received then opt_in (100 kW expected per interval), the district's
    telemetry (the sum of the sites' import) and offer (the sum of theirs), one report per
    ended interval whose baseline is the sum of the sites' baselines and whose delivered
    is 100 kW, then completed; the settlement CSV has a row per site and interval and the
    district's."""
    clock = VirtualClock(NOW)
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    sites = specs()
    cfg = fleet(mosquitto, tmp_path, sites)
    async with Emulator(sites, broker, clock) as emu, grid(broker, clock) as g:
        await emu.started()
        agg = Aggregator(cfg, clock)
        stop = asyncio.Event()
        task = asyncio.create_task(agg.run(stop))
        try:
            await advance(clock, lambda: bool(g.offers) and len(g.telemetry) >= 2)
            assert g.telemetry[-1]["site_import_kw"] == 1000.0
            first_window = g.offers[-1]["windows"][0]
            assert first_window["curtail_kw"] == 200.0  # 5 × 40 kW
            assert g.offers[-1]["site_id"] == DISTRICT

            start = NOW + 2 * FIVE
            await g.send(curtail("d-1", 100.0, start))
            await advance(clock, lambda: "opt_in" in g.statuses("d-1"), virtual_s=60)
            assert g.statuses("d-1") == ["received", "opt_in"]
            assert g.responses[-1]["expected_kw"] == [100.0] * 4
            await advance(clock, lambda: sum(bool(e.received) for e in emu.sites.values()) >= 3)
            asked = {
                s: e.received[-1].intervals[0].value for s, e in emu.sites.items() if e.received
            }
            assert asked == {"b1": 40.0, "b2": 40.0, "b3": 20.0}

            await advance(clock, lambda: "completed" in g.statuses("d-1"), virtual_s=3600)
            assert len(g.reports) == 4
            assert [len(r["intervals"]) for r in g.reports] == [1, 2, 3, 4]
            final = g.reports[-1]
            for iv in final["intervals"]:
                assert iv["requested_kw"] == 100.0
                assert iv["baseline_kw"] == 600.0  # b1 + b2 + b3
                assert iv["delivered_kw"] == 100.0
                assert iv["actual_kw"] == 500.0
            assert final["delivered_ratio"] == 1.0
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    rows = list(csv.DictReader((tmp_path / "settlement-d-1.csv").open()))
    assert len(rows) == 4 * 4  # 3 sites and the district per interval
    b3 = [r for r in rows if r["site_id"] == "b3"]
    assert [float(r["allocated_kw"]) for r in b3] == [20.0] * 4
    assert all(float(r["delivered_kw"]) == 20.0 and r["source"] == "report" for r in b3)
    district = [r for r in rows if r["site_id"] == DISTRICT]
    assert all(float(r["shortfall_kw"]) == 0.0 for r in district)


async def test_malformed_district_event_is_rejected_like_a_site_does(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """A district event with a negative duration and one not JSON: each gets one `rejected`
    naming the field (the same answer vpp.grid.parse gives a site); no site gets an event,
    and the aggregator goes on to answer a valid one."""
    clock = VirtualClock(NOW)
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    sites = specs(2)
    async with Emulator(sites, broker, clock) as emu, grid(broker, clock) as g:
        await emu.started()
        agg = Aggregator(fleet(mosquitto, tmp_path, sites), clock)
        stop = asyncio.Event()
        task = asyncio.create_task(agg.run(stop))
        try:
            await advance(clock, lambda: bool(g.offers))
            bad = json.loads(curtail("d-bad", 50.0, NOW + FIVE))
            bad["intervals"][1]["duration"] = "-PT5M"
            await g.send(json.dumps(bad).encode())
            await g.send(b"{not json")
            await advance(clock, lambda: len(g.responses) >= 2, virtual_s=60)
            first, second = g.responses[:2]
            assert first["status"] == "rejected" and first["event_id"] == "d-bad"
            assert first["errors"][0]["loc"] == "intervals[1].duration"
            assert second["status"] == "rejected" and second["event_id"] is None
            assert all(not e.received for e in emu.sites.values())
            await g.send(curtail("d-ok", 30.0, NOW + 2 * FIVE))
            await advance(clock, lambda: "opt_in" in g.statuses("d-ok"), virtual_s=60)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
