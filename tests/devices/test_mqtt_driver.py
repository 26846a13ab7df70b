"""The MQTT driver and hub against a real Mosquitto (fixture `mosquitto`)."""

from __future__ import annotations

import json
import uuid

import aiomqtt
import pytest

from devices.clock import VirtualClock
from devices.driver import DeviceError, PointError
from devices.health import HealthState
from devices.mqtt_driver import MqttDriver
from devices.mqtt_hub import MqttHub, MqttSettings
from devices.poller import Poller
from devices.profile import MqttProfile, load_profile, profile_dir
from tests.conftest import Broker


def charger_profile() -> MqttProfile:
    p = load_profile(profile_dir() / "ev-charger-mqtt.yaml")
    assert isinstance(p, MqttProfile)
    return p


TELEMETRY = {
    "state": 2,
    "plugged": True,
    "phases": 3,
    "power_kw": 7.2,
    "session_energy_kwh": 12.5,
    "power_limit_kw": 11,
    "watchdog_s": 60,
    "vendor_extra": "ignored",
}


async def publish(broker: Broker, clock: VirtualClock, topic: str, payload: bytes) -> None:
    """Publish from another client; the clock holds still until the hub has the message
    (and while this client connects: the broker is another process)."""
    async with clock.hold(), aiomqtt.Client(broker.host, broker.port) as c:
        clock.expect(topic)
        await c.publish(topic, payload, qos=1)


async def test_telemetry_by_subscription_then_stale_then_fresh(mosquitto: Broker) -> None:
    clock = VirtualClock()
    site = f"t{uuid.uuid4().hex[:8]}"
    settings = MqttSettings(mosquitto.host, mosquitto.port, client_id=f"{site}-agent")
    async with MqttHub(settings, clock=clock) as hub:
        await hub.wait_connected(10)
        drivers = [
            MqttDriver(d, charger_profile(), hub=hub, clock=clock, site=site, stale_after_s=3.0)
            for d in ("evse1", "evse2")
        ]
        for d in drivers:
            await d.start()
        with pytest.raises(DeviceError, match="no telemetry"):
            await drivers[0].read()
        await publish(mosquitto, clock, drivers[0].telemetry_topic, json.dumps(TELEMETRY).encode())
        await clock.sleep(0.5)
        r = await drivers[0].read()
        assert r.values["power_kw"] == 7.2 and r.values["plugged"] == 1.0
        assert r.values["max_power_kw"] == 11  # profile default until the device says otherwise
        assert "vendor_extra" not in r.values
        with pytest.raises(DeviceError):  # the other device on the same hub got nothing
            await drivers[1].read()
        await clock.sleep(3.0)
        with pytest.raises(DeviceError, match="stale"):
            await drivers[0].read()
        assert drivers[0].health.state is HealthState.degraded


async def test_poller_degrades_stale_mqtt_device_and_restores_it(mosquitto: Broker) -> None:
    clock = VirtualClock()
    site = f"t{uuid.uuid4().hex[:8]}"
    async with MqttHub(MqttSettings(mosquitto.host, mosquitto.port), clock=clock) as hub:
        await hub.wait_connected(10)
        d = MqttDriver("evse", charger_profile(), hub=hub, clock=clock, site=site, stale_after_s=2)
        await d.start()
        payload = json.dumps(TELEMETRY).encode()
        await publish(mosquitto, clock, d.telemetry_topic, payload)
        await clock.sleep(0.1)  # received at t=0: polls run at 0.1, 1.1, 2.1, ...
        async with Poller([d], clock=clock, period_s=1.0, max_backoff_s=1.0) as poller:
            await clock.sleep(0.5)
            assert poller.health("evse").state is HealthState.online
            await clock.sleep(2.0)  # the 2.1 s poll finds telemetry 2.1 s old: stale
            assert poller.health("evse").state is HealthState.degraded
            await clock.sleep(1.0)
            assert poller.health("evse").state is HealthState.offline
            await publish(mosquitto, clock, d.telemetry_topic, payload)
            await clock.sleep(1.0)
            assert poller.health("evse").state is HealthState.online


async def test_malformed_telemetry_is_a_device_error_naming_the_field(mosquitto: Broker) -> None:
    clock = VirtualClock()
    site = f"t{uuid.uuid4().hex[:8]}"
    async with MqttHub(MqttSettings(mosquitto.host, mosquitto.port), clock=clock) as hub:
        await hub.wait_connected(10)
        d = MqttDriver("evse", charger_profile(), hub=hub, clock=clock, site=site)
        await d.start()
        await publish(mosquitto, clock, d.telemetry_topic, b'{"power_kw": "lots"}')
        await clock.sleep(0.1)
        with pytest.raises(DeviceError, match="power_kw is not a number"):
            await d.read()
        await publish(mosquitto, clock, d.telemetry_topic, b"not json")
        await clock.sleep(0.1)
        with pytest.raises(DeviceError, match="not JSON"):
            await d.read()


async def test_commands_are_clamped_and_published_as_json(mosquitto: Broker) -> None:
    clock = VirtualClock()
    site = f"t{uuid.uuid4().hex[:8]}"
    async with MqttHub(MqttSettings(mosquitto.host, mosquitto.port), clock=clock) as hub:
        await hub.wait_connected(10)
        d = MqttDriver(
            "evse",
            charger_profile(),
            hub=hub,
            clock=clock,
            site=site,
            limits={"power_limit_kw": (0.0, 11.0)},
        )
        await d.start()
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as listener:
            await listener.subscribe(d.command_topic, qos=1)
            res = await d.write("power_limit_kw", 30.0)
            wd = await d.write("watchdog_s", 5.4)
            got = []
            async for m in listener.messages:
                got.append(json.loads(bytes(m.payload)))  # type: ignore[arg-type]
                if len(got) == 2:
                    break
        assert (res.written, res.clamped, res.verified) == (11.0, True, None)
        assert got == [{"power_limit_kw": 11.0}, {"watchdog_s": 10}]
        assert wd.written == 10.0 and wd.clamped
        with pytest.raises(PointError, match="read-only"):
            await d.write("power_kw", 1.0)


async def test_publish_without_broker_is_a_device_error() -> None:
    from tests.conftest import free_port

    clock = VirtualClock()
    hub = MqttHub(MqttSettings("127.0.0.1", free_port()), clock=clock)
    d = MqttDriver("evse", charger_profile(), hub=hub, clock=clock)
    with pytest.raises(DeviceError, match="not connected"):
        await d.write("power_limit_kw", 5.0)
