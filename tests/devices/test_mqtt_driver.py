"""The MQTT driver and hub against a real Mosquitto (fixture `mosquitto`)."""

from __future__ import annotations

import contextlib
import json
import socket
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


async def test_messages_without_a_profile_field_do_not_refresh_freshness(
    mosquitto: Broker,
) -> None:
    clock = VirtualClock()
    site = f"t{uuid.uuid4().hex[:8]}"
    async with MqttHub(MqttSettings(mosquitto.host, mosquitto.port), clock=clock) as hub:
        await hub.wait_connected(10)
        d = MqttDriver("evse", charger_profile(), hub=hub, clock=clock, site=site, stale_after_s=3)
        await d.start()
        await publish(mosquitto, clock, d.telemetry_topic, json.dumps(TELEMETRY).encode())
        await clock.sleep(2.0)
        for junk in ({}, {"vendor_extra": 1}, {"ts": "2026-07-15T02:00:00+00:00"}):
            await publish(mosquitto, clock, d.telemetry_topic, json.dumps(junk).encode())
        await clock.sleep(1.5)  # 3.5 s after the last real telemetry
        with pytest.raises(DeviceError, match="stale"):
            await d.read()
        await publish(mosquitto, clock, d.telemetry_topic, b'{"power_kw": 3.5}')
        assert (await d.read()).values["power_kw"] == 3.5  # one profile field is telemetry


async def test_availability_offline_and_will_take_the_device_offline(mosquitto: Broker) -> None:
    clock = VirtualClock()
    site = f"t{uuid.uuid4().hex[:8]}"
    async with MqttHub(MqttSettings(mosquitto.host, mosquitto.port), clock=clock) as hub:
        await hub.wait_connected(10)
        d = MqttDriver("evse", charger_profile(), hub=hub, clock=clock, site=site)
        await d.start()
        telemetry = json.dumps(TELEMETRY).encode()
        await publish(mosquitto, clock, d.state_topic, b'{"online": true}')
        await publish(mosquitto, clock, d.telemetry_topic, telemetry)
        assert (await d.read()).values["power_kw"] == 7.2
        d.changed.clear()
        await publish(mosquitto, clock, d.state_topic, b'{"online": false}')
        assert d.changed.is_set()  # the Poller is told at once
        with pytest.raises(DeviceError, match="says it is offline") as offline:
            await d.read()
        assert offline.value.connection_lost and d.health.state is HealthState.offline
        await publish(mosquitto, clock, d.state_topic, b'{"online": true}')
        with pytest.raises(DeviceError, match=r"no telemetry .* since it came online") as back:
            await d.read()  # the telemetry from before the outage does not count
        assert back.value.connection_lost
        await publish(mosquitto, clock, d.state_topic, b'{"online": "maybe"}')  # ignored
        await publish(mosquitto, clock, d.telemetry_topic, telemetry)
        assert (await d.read()).values["power_kw"] == 7.2
        # A client that vanishes without a DISCONNECT: the broker publishes its Will.
        will = aiomqtt.Will(d.state_topic, b'{"online": false}', qos=1, retain=True)
        device = aiomqtt.Client(mosquitto.host, mosquitto.port, will=will, keepalive=60)
        async with clock.hold():
            await device.__aenter__()
        sock = device._client.socket()
        assert isinstance(sock, socket.socket)
        clock.expect(d.state_topic)  # time stands still until the hub has the Will
        sock.shutdown(socket.SHUT_RDWR)
        await clock.sleep(0.01)
        with pytest.raises(DeviceError, match="says it is offline"):
            await d.read()
        with contextlib.suppress(aiomqtt.MqttError):
            await device.__aexit__(None, None, None)


async def test_stale_after_a_few_of_the_devices_own_telemetry_periods(mosquitto: Broker) -> None:
    clock = VirtualClock()
    site = f"t{uuid.uuid4().hex[:8]}"
    payload = json.dumps(TELEMETRY).encode()
    async with MqttHub(MqttSettings(mosquitto.host, mosquitto.port), clock=clock) as hub:
        await hub.wait_connected(10)
        learnt = MqttDriver("a", charger_profile(), hub=hub, clock=clock, site=site)
        told = MqttDriver(
            "b", charger_profile(), hub=hub, clock=clock, site=site, telemetry_period_s=0.5
        )
        for d in (learnt, told):
            await d.start()
        for _ in range(5):  # every second; 0.1 s after one an extra message (a command's)
            for d in (learnt, told):
                await publish(mosquitto, clock, d.telemetry_topic, payload)
            await clock.sleep(0.1)
            await publish(mosquitto, clock, learnt.telemetry_topic, payload)
            await clock.sleep(0.9)
        # t = 5.6: the site's 0.5 s period makes `told` stale (1.5 s after t = 4.0)...
        await clock.sleep(0.6)
        with pytest.raises(DeviceError, match=r"stale after 1\.5 s"):
            await told.read()
        await learnt.read()  # ...the learnt period is 0.9 s, not the 10 s fallback
        assert learnt.next_check_s() == pytest.approx(4.1 + 3 * 0.9)  # its last came at 4.1
        await clock.sleep(1.2)
        with pytest.raises(DeviceError, match=r"stale after 2\.7 s"):
            await learnt.read()
        # The device now publishes every 4 s: the period is learnt again, no flapping.
        for _ in range(2):
            await publish(mosquitto, clock, learnt.telemetry_topic, payload)
            await clock.sleep(4.0)
        await publish(mosquitto, clock, learnt.telemetry_topic, payload)
        await clock.sleep(3.9)
        await learnt.read()


async def test_poller_takes_an_mqtt_device_offline_between_its_polls(mosquitto: Broker) -> None:
    clock = VirtualClock()
    site = f"t{uuid.uuid4().hex[:8]}"
    async with MqttHub(MqttSettings(mosquitto.host, mosquitto.port), clock=clock) as hub:
        await hub.wait_connected(10)
        d = MqttDriver(
            "evse", charger_profile(), hub=hub, clock=clock, site=site, telemetry_period_s=1
        )
        await d.start()
        await publish(mosquitto, clock, d.telemetry_topic, json.dumps(TELEMETRY).encode())
        async with Poller([d], clock=clock, period_s=60.0) as poller:
            await clock.sleep(1.0)
            assert poller.health("evse").state is HealthState.online
            await clock.sleep(2.5)  # 3 telemetry periods without a message: stale
            assert poller.health("evse").state is HealthState.degraded
            assert "stale" in poller.health("evse").reason
            await clock.sleep(3.0)  # 3 more: offline, long before the next poll at 60 s
            assert poller.health("evse").state is HealthState.offline
            await publish(mosquitto, clock, d.telemetry_topic, json.dumps(TELEMETRY).encode())
            await publish(mosquitto, clock, d.state_topic, b'{"online": false}')
            await clock.sleep(0.01)
            assert "says it is offline" in poller.health("evse").reason
            assert poller.stats().polls == 1  # the early reads are no polls
            assert poller.latest("evse") is not None


async def test_messages_at_one_instant_teach_no_zero_period(mosquitto: Broker) -> None:
    """Several telemetry messages in one simulated instant (a loaded machine delivers a
    simulator's queued messages together) said the period was 0 s: the stale bound became
    0, the device `offline` for "no telemetry for 0 s" and the Poller's watch loop divided
    by zero, ending the Poller."""
    clock = VirtualClock()
    site = f"t{uuid.uuid4().hex[:8]}"
    payload = json.dumps(TELEMETRY).encode()
    async with MqttHub(MqttSettings(mosquitto.host, mosquitto.port), clock=clock) as hub:
        await hub.wait_connected(10)
        d = MqttDriver("a", charger_profile(), hub=hub, clock=clock, site=site)
        await d.start()
        for _ in range(6):  # six at t = 0: no interval learnt from them
            await publish(mosquitto, clock, d.telemetry_topic, payload)
        async with Poller([d], clock=clock, period_s=1.0) as poller:
            await clock.sleep(2.0)
            assert poller.health("a").state is HealthState.online
            await d.read()  # fresh: the 10-s fallback bound, not a zero one
            due = d.next_check_s()
            assert due is not None and due > clock.monotonic()
