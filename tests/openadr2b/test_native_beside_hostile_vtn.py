"""Both links configured, the VTN broken (500s, garbage, hangs): the agent keeps running and
the native MQTT contract keeps working (an event over MQTT answered `received`, then
`opt_in`) while the 2.0b VEN logs and retries."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.clock import WallClock
from tests.conftest import Broker
from tests.grid.live import agent_for, night_timezone, sim_for, small_site_data, watcher
from tests.openadr2b import hostile as h
from tests.openadr2b.ready import agent_ready
from vpp.grid.client import build_event
from vpp.grid.fanout import FanoutLink
from vpp.grid.openadr2b.link import Oadr2bLink
from vpp.site import BrokerConfig, parse_site


@pytest.mark.timeout(90)
async def test_the_native_contract_works_while_the_vtn_is_broken(
    mosquitto: Broker, tmp_path: Path
) -> None:
    clock = WallClock()
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    vtn = h.HostileVtn()
    bad = [h.Answer(500, b"down"), h.Answer(200, b"<oadrPayload><"), h.Answer(200, h.HANG)]
    vtn.then("EiRegisterParty", *itertools.islice(itertools.cycle(bad), 60))
    data = small_site_data(night_timezone(datetime.now(UTC), 14))
    async with vtn.running():
        data["grid"] = {"openadr2b": {"vtn_url": vtn.url, "ven_name": "live-1", "poll_s": 1}}
        site = parse_site(data, tmp_path / "site.yaml")
        async with sim_for(site, clock, broker) as sim, watcher(broker, clock) as grid:
            agent, dr = agent_for(site, sim, clock, broker, tmp_path / "s.sqlite")
            assert isinstance(agent.link, FanoutLink)
            ven = agent.link.links["openadr2b"]
            assert isinstance(ven, Oadr2bLink)
            stop = asyncio.Event()
            run = asyncio.create_task(agent.run(stop))
            try:
                await agent_ready(agent, dr)
                # Its telemetry flows over MQTT meanwhile.
                await grid.until(lambda: any(t["site_import_kw"] for t in grid.telemetry), 30)
                now = datetime.now(UTC)
                event = build_event(
                    now=now, curtail_kw=30, start=now + timedelta(minutes=5),
                    duration="PT30M", interval="PT15M", event_id="native-1",
                )  # fmt: skip
                await grid.send(event.to_json())
                await grid.until(
                    lambda: grid.statuses("native-1")[:2] == ["received", "opt_in"], 30
                )
                await grid.until(lambda: ven.vtn_errors >= 3, 30)
                assert not run.done()
            finally:
                stop.set()
                await asyncio.wait_for(run, 30)
    assert ven.ven_id is None  # never registered: the VTN never answered usably
    assert {s for s, _ in vtn.requests} == {"EiRegisterParty"}
