"""The aggregator with a real site agent among emulated ones (real Mosquitto, simulated
building, virtual clock): the district's share of a real site goes down as an ordinary site
event, the agent answers it and reports it, and the district settles it on that report."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from devices.clock import VirtualClock
from tests.conftest import Broker
from tests.fleet.live import FIVE, NOW, advance, curtail, fleet, grid, specs
from tests.grid.live import SITE_ID, agent_for, sim_for, small_site_data
from vpp.fleet.aggregator import Aggregator
from vpp.fleet.emulator import Emulator, SiteSpec, make_offer
from vpp.grid.topics import SiteTopics
from vpp.site import BrokerConfig, parse_site

EPS = timedelta(microseconds=1)


async def test_a_real_site_agent_carries_its_part(mosquitto: Broker, tmp_path: Path) -> None:
    """live-1 (a real agent; a stand-in offer of 50 kW at the lowest cost, published for it
    until agents publish their own) and two emulated sites; 60 kW asked: live-1 gets 50 kW,
    answers received and opt_in, and reports each interval; the district's report carries
    its baseline and delivery, and the district delivers at least 95 % in every interval.
    Its telemetry (grid extensions on) states, through each interval, the settlement
    baseline whose mean that interval's report then gives: what the follow-up measures it
    against."""
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    emulated = specs(2)
    stand_in = SiteSpec(SITE_ID, capacity_kw=50.0, cost_per_kwh=0.5, p90_share=1.0)
    data = small_site_data()
    data.setdefault("grid", {})["extensions"] = True
    site = parse_site(data, Path("live-site.yaml"))
    sim = sim_for(site, clock, broker)
    async with sim, Emulator(emulated, broker, clock) as emu, grid(broker, clock) as g:
        agent, dr = agent_for(site, sim, clock, broker, tmp_path / "site.sqlite")
        await emu.started()
        offer = make_offer(stand_in, NOW)
        await g.client.publish(
            SiteTopics("vpp", SITE_ID).offers.name, offer.to_json(), qos=1, retain=True
        )
        cfg = fleet(mosquitto, tmp_path, [stand_in, *emulated], control_period_s=300)
        agg = Aggregator(cfg, clock)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(agent.run(stop)), asyncio.create_task(agg.run(stop))]
        try:
            await advance(clock, lambda: dr.plans >= 1 and bool(g.offers), step_s=1.0)
            await g.send(curtail("d-real", 60.0, NOW + 3 * FIVE, n=3))
            leg = lambda: agg.events.runs["d-real"].legs[SITE_ID]  # noqa: E731
            await advance(
                clock,
                lambda: "d-real" in agg.events.runs and leg().status == "opt_in",
                virtual_s=120,
                step_s=1.0,
            )
            assert leg().values == [50.0] * 3
            assert agg.events.runs["d-real"].legs.keys() == {SITE_ID, "b1"}
            await advance(clock, lambda: "completed" in g.statuses("d-real"), virtual_s=3600)
            final = g.reports[-1]["intervals"]
            reports = agg.events.store.site_reports("d-real")
            site_report = reports[SITE_ID]["intervals"]
            run, info = agg.events.runs["d-real"], agg.book.sites[SITE_ID]
            for k, iv in enumerate(final):
                stated = [kw for t, kw in info.stated if run.interval_at(t - EPS) == k]
                mean = sum(stated) / len(stated) if stated else None
                assert mean == pytest.approx(site_report[k]["baseline_kw"], abs=0.01), stated
                assert iv["baseline_kw"] == round(site_report[k]["baseline_kw"] + 200.0, 3)
                assert site_report[k]["delivered_kw"] >= 0.95 * 50.0, site_report
                assert iv["delivered_kw"] >= 0.95 * 60.0, final
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 20)
