"""The agent against the simulated office over real sockets and a real Mosquitto broker."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt

from devices.clock import VirtualClock
from devices.codec import decode, encode
from devices.profile import ModbusProfile
from tests.conftest import Broker
from vpp.service import site_agent
from vpp.simsite import rebind, simulated_site
from vpp.site import BrokerConfig, Site, load_site

OFFICE = Path(__file__).resolve().parent.parent / "config" / "sites" / "office.yaml"
START = datetime(2026, 7, 15, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def _office(step_s: float) -> Site:
    site = load_site(OFFICE)
    sim = site.config.sim.model_copy(update={"step_s": step_s})
    cfg = site.config.model_copy(update={"sim": sim})
    return Site(config=cfg, devices=site.devices, source=site.source)


def _as_served(profile: ModbusProfile, point: str, value: float, sf: int | None) -> float:
    p = profile.points[point]
    return decode(p, encode(p, value, profile.word_order_of(p), sf), profile.word_order_of(p), sf)


async def test_agent_view_matches_simulator_for_every_point(
    fresh_mosquitto: Broker, tmp_path: Path
) -> None:
    mosquitto = fresh_mosquitto
    clock = VirtualClock(START)
    site = _office(step_s=600)  # physics first steps at t=600 s: the state holds still until then
    sim = simulated_site(site, clock, broker=(mosquitto.host, mosquitto.port), any_port=True)
    async with sim:
        live = rebind(site, sim.endpoints())
        broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
        agent = site_agent(  # no DR, no control: devices only read (and re-asserted)
            live,
            clock,
            broker=broker,
            store_path=tmp_path / "s.sqlite",
            client_id="t-view",
            strategy="none",
            demand_response=False,
        )
        stop = asyncio.Event()
        run = asyncio.create_task(agent.run(stop))
        await clock.sleep(70)  # every device polled at least once (slowest period 60 s)
        truth = sim.state()
        checked = 0
        for d in live.devices:
            if not isinstance(d.profile, ModbusProfile):
                continue
            reading = agent.poller.latest(d.id)
            assert reading is not None, d.id
            assert agent.poller.health(d.id).state == "online"
            for name, point in d.profile.points.items():
                if name not in truth[d.id]:
                    continue  # constants with no physics (scale factors, markers)
                sf_name = point.scale_factor
                sf = int(reading.values[sf_name]) if sf_name else None
                expected = _as_served(d.profile, name, truth[d.id][name], sf)
                assert abs(reading.values[name] - expected) < 1e-6, (d.id, name)
                checked += 1
        assert checked > 80
        stop.set()
        await asyncio.wait_for(run, 30)


async def test_setpoint_through_driver_changes_physics_and_agent_publishes(
    fresh_mosquitto: Broker, tmp_path: Path
) -> None:
    mosquitto = fresh_mosquitto
    clock = VirtualClock(START)
    site = _office(step_s=1)
    sim = simulated_site(site, clock, broker=(mosquitto.host, mosquitto.port), any_port=True)
    got: list[dict[str, object]] = []
    async with sim, aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="t-watch") as watcher:
        await watcher.subscribe("vpp/office-1/#", qos=1)
        live = rebind(site, sim.endpoints())
        broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
        agent = site_agent(  # no DR, no control: devices only read (and re-asserted)
            live,
            clock,
            broker=broker,
            store_path=tmp_path / "s.sqlite",
            client_id="t-sp",
            strategy="none",
            demand_response=False,
        )
        stop = asyncio.Event()
        run = asyncio.create_task(agent.run(stop))
        await clock.sleep(3)
        soc0 = sim.state()["bat1"]["soc_pct"]
        result = await agent.drivers["bat1"].write("power_setpoint_kw", -100.0)
        await agent.drivers["bat1"].write("control_mode", 1)
        assert result.written == -100.0 and not result.clamped
        clamped = await agent.drivers["bat1"].write("power_setpoint_kw", -900.0)
        assert clamped.clamped and clamped.written == -250.0  # site limit, never sent raw
        await agent.drivers["bat1"].write("power_setpoint_kw", -100.0)
        await clock.sleep(36)  # 0.01 h of discharge at 100 kW
        state = sim.state()["bat1"]
        assert state["power_kw"] == -100.0
        assert state["soc_pct"] < soc0
        stop.set()
        await asyncio.wait_for(run, 30)

        async def collect() -> None:
            async for m in watcher.messages:
                if m.retain:
                    continue  # left by an earlier test
                got.append({"topic": str(m.topic), "payload": json.loads(m.payload)})  # type: ignore[arg-type]
                if str(m.topic).endswith("/status") and got[-1]["payload"]["online"] is False:  # type: ignore[index]
                    return

        await asyncio.wait_for(collect(), 10)
    telemetry = [g for g in got if g["topic"] == "vpp/office-1/telemetry"]
    assert telemetry, "telemetry published"
    last = telemetry[-1]["payload"]
    assert last["v"] == 1 and last["devices"]["bat1"]["online"] is True  # type: ignore[index]
    assert "soc" in last["devices"]["bat1"]  # type: ignore[index]
    statuses = [g["payload"]["online"] for g in got if str(g["topic"]).endswith("/status")]  # type: ignore[index]
    assert statuses[0] is True and statuses[-1] is False
