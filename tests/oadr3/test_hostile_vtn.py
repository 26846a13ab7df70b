"""A broken or hostile VTN never stops the agent, and the native MQTT contract keeps working
meanwhile: the token endpoint down, bad JSON, wrong types and 500s are each one log line and
a retry; once the VTN is sound again its event is carried in."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta
from pathlib import Path

import pytest

from devices.clock import VirtualClock
from tests.conftest import Broker
from tests.grid.helpers import NOW, event_dict, interval, payload
from tests.grid.live import advance_until, agent_for, sim_for, watcher
from tests.oadr3.live import cap_event, oadr3_site, program
from tests.oadr3_vtn.server import serve
from vpp.grid.fanout import FanoutLink
from vpp.grid.oadr3.link import Oadr3Link
from vpp.site import BrokerConfig


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed on return: nothing listens there


@pytest.mark.timeout(180)
async def test_hostile_vtn_never_stops_the_agent_and_mqtt_keeps_working(
    mosquitto: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    with serve() as vtn:
        vtn.token_url = f"http://127.0.0.1:{_dead_port()}/token"  # the token endpoint down
        site = oadr3_site(vtn, monkeypatch, poll_s=5)
        sim = sim_for(site, clock, broker)
        async with sim, watcher(broker, clock) as grid:
            agent, dr = agent_for(site, sim, clock, broker, tmp_path / "s.sqlite")
            assert isinstance(agent.link, FanoutLink)
            ven = agent.link.links["openadr3"]
            assert isinstance(ven, Oadr3Link)
            stop = asyncio.Event()
            run = asyncio.create_task(agent.run(stop))
            try:
                await advance_until(clock, lambda: dr.plans >= 1 and ven.failures >= 2)
                assert not ven.registered.is_set()
                # The native contract answers meanwhile.
                start = clock.now().replace(microsecond=0) + timedelta(minutes=2)
                ev = event_dict(
                    event_id="mqtt-1", intervals=[interval(start.isoformat(), "PT15M", 20)]
                )
                async with clock.hold():
                    await grid.send(payload(ev))
                    await grid.until(lambda: len(grid.statuses("mqtt-1")) >= 2)
                assert grid.statuses("mqtt-1") == ["received", "opt_in"]

                vtn.token_url = None  # the token endpoint is back
                await advance_until(clock, lambda: ven.registered.is_set(), 120)
                prog = program(vtn)
                for fault in ("bad_json", "500"):
                    vtn.faults = {"/events": fault}
                    before, polls = ven.failures, ven.polls
                    await advance_until(clock, lambda b=before: ven.failures > b, 120)
                    assert ven.polls == polls, fault  # no poll completed on a broken answer
                    assert not run.done()
                # Objects of the wrong types: each is skipped (logged), the poll goes on.
                for path in ("/events", "/programs"):
                    vtn.faults = {path: "wrong_types"}
                    before = ven.polls
                    await advance_until(clock, lambda b=before: ven.polls > b, 120)
                    assert ven.state.events == {}
                vtn.faults = {}
                later = clock.now().replace(microsecond=0) + timedelta(minutes=30)
                event = cap_event(vtn, prog["id"], later, [120.0])
                native = f"oadr3.{event['id']}"
                await advance_until(
                    clock,
                    lambda: (
                        [r["status"] for r in agent.store.responses(native)][:1] == ["received"]
                    ),
                    120,
                )
                assert not run.done()
            finally:
                stop.set()
                await asyncio.wait_for(run, 30)
    # What the VEN sent stayed valid throughout.
    assert [e for e in vtn.exchanges if e.request_problems] == []
