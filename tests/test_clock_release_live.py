"""A broker that goes away takes the messages on their way with it: the receivers (the MQTT
hub of the site's devices, the grid link) release what the virtual clock expected of them
when their connection drops, so simulated time moves on at once instead of after the
clock's 30-s guard, and nothing is counted as a hold time-out."""

from __future__ import annotations

import asyncio
import contextlib
import time

from devices.clock import VirtualClock
from devices.mqtt_hub import MqttHub, MqttSettings
from tests.conftest import Broker
from vpp.mqtt_link import MqttLink, message_key
from vpp.site import BrokerConfig


def _stop(broker: Broker) -> None:
    broker.process.terminate()
    broker.process.wait(timeout=10)


async def _time_moves_soon(clock: VirtualClock) -> float:
    """Sleep 10 s of clock time; the wall seconds it took."""
    t0 = time.monotonic()
    await asyncio.wait_for(clock.sleep(10), 60)
    return time.monotonic() - t0


async def test_the_hub_releases_expected_telemetry_when_the_broker_goes(
    fresh_mosquitto: Broker,
) -> None:
    clock = VirtualClock()
    topic = "site/meter/telemetry"
    async with MqttHub(
        MqttSettings(fresh_mosquitto.host, fresh_mosquitto.port), clock=clock
    ) as hub:
        await hub.subscribe(topic, lambda payload: None)
        await hub.wait_connected(10)
        clock.expect(topic)  # a QoS 0 message the broker will never send now
        _stop(fresh_mosquitto)
        wall = await _time_moves_soon(clock)
    assert clock.monotonic() >= 10
    assert wall < 15  # the guard would take 30 s
    assert clock.hold_timeouts == 0


async def test_the_grid_link_releases_an_expected_event_when_the_broker_goes(
    fresh_mosquitto: Broker,
) -> None:
    clock = VirtualClock()
    link = MqttLink(
        BrokerConfig(host=fresh_mosquitto.host, port=fresh_mosquitto.port), "site-x", clock
    )
    task = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(link.connected.wait(), 10)
        clock.expect(message_key(link.topics.events.name, b'{"v":1}'))
        _stop(fresh_mosquitto)
        wall = await _time_moves_soon(clock)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert clock.monotonic() >= 10
    assert wall < 15
    assert clock.hold_timeouts == 0
