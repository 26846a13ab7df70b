"""Plausibility by the device's rating and direction (issue 13, point 6), through the agent's
own device layer (vpp.drivers.SiteDevices: the kind plugins' bounds handed to the poller): a
one-way 11 kW charger over MQTT (real Mosquitto) reporting -500 kW is rejected with a one-line
reason naming the field; a 20 kW two-way (V2G) charger over Modbus TCP (a real pymodbus
server) reading -15 kW is fine, and -500 kW is not."""

from __future__ import annotations

import json
import uuid

import aiomqtt

from devices.clock import VirtualClock
from devices.health import HealthState
from devices.profile import ModbusProfile, load_profile, profile_dir
from tests.conftest import Broker
from tests.devices.profile_server import ProfileServer
from tests.replay.helpers import ROOT
from vpp.drivers import SiteDevices, mqtt_hub_for
from vpp.site import BrokerConfig, Site, parse_site


def _site(broker: Broker, site_id: str, v2g_port: int) -> Site:
    raw = {
        "site_id": site_id,
        "timezone": "UTC",
        "broker": {"host": broker.host, "port": broker.port},
        "periods": {"poll_s": 5, "telemetry_s": 5, "control_s": 5},
        "devices": [
            {
                "id": "evse",
                "type": "ev_charger",
                "profile": "ev-charger-mqtt",
                "limits": {"power_limit_kw": [0, 11]},
            },
            {
                "id": "v2g1",
                "type": "ev_charger_v2g",
                "profile": "v2g-charger-modbus",
                "port": v2g_port,
                "limits": {"power_setpoint_kw": [-20, 20]},
            },
        ],
    }
    return parse_site(raw, ROOT / "config" / "sites" / "test.yaml")


async def _publish(
    broker: Broker, clock: VirtualClock, topic: str, payload: dict[str, object]
) -> None:
    # Retained: the device layer's subscription may still be on its way (the hub subscribes
    # in its own task); it then gets the message when it arrives.
    async with clock.hold(), aiomqtt.Client(broker.host, broker.port) as c:
        clock.expect(topic)
        await c.publish(topic, json.dumps(payload).encode(), qos=1, retain=True)


async def test_readings_are_checked_against_the_devices_rating_and_direction(
    mosquitto: Broker,
) -> None:
    clock = VirtualClock()
    v2g_profile = load_profile(profile_dir() / "v2g-charger-modbus.yaml")
    assert isinstance(v2g_profile, ModbusProfile)
    server = await ProfileServer(v2g_profile, clock).start()
    site_id = f"t{uuid.uuid4().hex[:8]}"
    site = _site(mosquitto, site_id, server.port)
    hub = mqtt_hub_for(site, clock, BrokerConfig(host=mosquitto.host, port=mosquitto.port), site_id)
    assert hub is not None
    devices = SiteDevices(site, clock, hub)
    topic = f"vpp/{site_id}/evse/telemetry"
    try:
        async with hub:
            await hub.wait_connected(10)
            server.set("plugged", 1)
            server.set("power_kw", -15.0)  # giving 15 kW back to the building: within its 20
            async with devices.poller as poller:
                await _publish(mosquitto, clock, topic, {"plugged": True, "power_kw": -500})
                await clock.sleep(12)
                h = poller.health("evse")
                assert h.state is not HealthState.online, h
                assert "power_kw = -500 outside [" in h.reason and "\n" not in h.reason, h
                assert "rating" in h.reason, h
                assert poller.health("v2g1").state is HealthState.online
                r = poller.latest("v2g1")
                assert r is not None and r.values["power_kw"] == -15.0
                # The same charger honestly charging is fine again.
                await _publish(mosquitto, clock, topic, {"plugged": True, "power_kw": 10.5})
                await clock.sleep(12)
                assert poller.health("evse").state is HealthState.online
                # The V2G charger is two-way, not unbounded: -500 kW is beyond its rating.
                server.set("power_kw", -500.0)
                await clock.sleep(12)
                h = poller.health("v2g1")
                assert h.state is not HealthState.online and "power_kw = -500" in h.reason, h
    finally:
        await server.stop()
