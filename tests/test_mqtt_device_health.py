"""Issue 13.9: an MQTT device that says it is offline, or loses its connection (its last
will), is out of the agent's view (what dispatch and the plan use) within two control
cycles. Real Mosquitto, the simulated MQTT chargers, the agent on a VirtualClock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from devices.clock import VirtualClock
from devices.health import HealthState
from tests.conftest import Broker
from vpp.agent import Agent
from vpp.service import site_agent
from vpp.simsite import rebind, simulated_site
from vpp.site import BrokerConfig, Site, load_site

OFFICE = Path(__file__).resolve().parent.parent / "config" / "sites" / "office.yaml"
START = datetime(2026, 7, 15, 2, 0, tzinfo=UTC)
KEEP = ("meter", "bat1", "ev6", "ev7", "ev8")  # ev7, ev8 speak MQTT, polled every 60 s


def _small_office() -> Site:
    site = load_site(OFFICE)
    devices = [d for d in site.devices if d.id in KEEP]
    return Site(config=site.config, devices=devices, source=site.source)


async def _seconds_until_out(agent: Agent, clock: VirtualClock, device_id: str) -> float:
    """Virtual seconds until the agent's snapshot leaves `device_id` out (at most 60)."""
    t0 = clock.monotonic()
    while agent.snapshot().devices[device_id].usable and clock.monotonic() - t0 < 60:
        await clock.sleep(0.5)
    return clock.monotonic() - t0


async def test_mqtt_device_offline_or_lost_is_out_within_two_control_cycles(
    fresh_mosquitto: Broker, tmp_path: Path
) -> None:
    mosquitto = fresh_mosquitto
    clock = VirtualClock(START, max_hold_wall_s=5.0)  # headroom on a loaded machine
    site = _small_office()
    two_cycles = 2 * site.config.periods.control_s
    sim = simulated_site(site, clock, broker=(mosquitto.host, mosquitto.port), any_port=True)
    async with sim:
        agent = site_agent(
            rebind(site, sim.endpoints()),
            clock,
            broker=BrokerConfig(host=mosquitto.host, port=mosquitto.port),
            store_path=tmp_path / "s.sqlite",
            client_id="t-mqtt-health",
            strategy="none",
            demand_response=False,
        )
        stop = asyncio.Event()
        run = asyncio.create_task(agent.run(stop))
        await clock.sleep(65)  # every device polled once (the chargers every 60 s)
        for d in ("ev7", "ev8"):
            assert agent.snapshot().devices[d].usable, agent.poller.health(d)

        # ev7 loses its connection without a goodbye: the broker publishes its last will.
        ev7 = sim.mqtt_device("ev7")
        clock.expect(ev7.state_topic)  # the Will crosses the broker in no virtual time
        await ev7.crash()
        lost_s = await _seconds_until_out(agent, clock, "ev7")
        health = agent.poller.health("ev7")
        assert lost_s <= two_cycles, (lost_s, health)
        assert health.state is HealthState.offline and "says it is offline" in health.reason

        # ev8 stays connected and says it is out of service.
        ev8 = sim.mqtt_device("ev8")
        clock.expect(ev8.state_topic)
        await ev8.say_online(False)
        said_s = await _seconds_until_out(agent, clock, "ev8")
        assert said_s <= two_cycles, (said_s, agent.poller.health("ev8"))
        assert agent.snapshot().devices["ev6"].usable  # the Modbus charger is untouched

        # Back in service: in the view again once fresh telemetry is polled.
        await ev8.say_online(True)
        await clock.sleep(70)
        assert agent.snapshot().devices["ev8"].usable, agent.poller.health("ev8")
        assert not agent.snapshot().devices["ev7"].usable
        stop.set()
        await asyncio.wait_for(run, 30)
