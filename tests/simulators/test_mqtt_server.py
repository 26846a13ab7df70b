"""An MQTT device served through a real Mosquitto: telemetry, commands, acks, faults."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import aiomqtt
import pytest

from devices.clock import VirtualClock
from simulators.site import SimDeviceSpec, SimulatedSite
from tests.conftest import Broker
from tests.simulators.conftest import profile

SITE = "mqtt-test"


async def next_message(
    clock: VirtualClock,
    client: aiomqtt.Client,
    topic: str,
    since: datetime | None = None,
    wall_s: float = 5.0,
) -> dict[str, Any]:
    """The next JSON message on `topic` (stamped `since` or later, if given); virtual time
    stands still while we wait."""

    async def wait() -> dict[str, Any]:
        async for msg in client.messages:
            if msg.topic.matches(topic):
                body = dict(json.loads(bytes(msg.payload)))  # type: ignore[arg-type]
                if since is None or datetime.fromisoformat(body["ts"]) >= since:
                    return body
        raise AssertionError("message stream ended")

    async with clock.hold():
        return await asyncio.wait_for(wait(), wall_s)


async def command(
    clock: VirtualClock,
    client: aiomqtt.Client,
    topic: str,
    body: dict[str, Any] | bytes,
    wait_ack: bool = True,
) -> dict[str, Any]:
    """Publish a command and return its ack. Time stands still for the whole round trip
    (`expect` alone would release it when the device receives the command, while our own
    publish may still wait for the broker's PUBACK)."""
    payload = body if isinstance(body, bytes) else json.dumps(body)
    async with clock.hold():
        clock.expect(topic)
        await client.publish(topic, payload, qos=1)
        if not wait_ack:
            return {}
        return await next_message(clock, client, topic + "/ack")


async def test_unreachable_broker_is_named_with_the_device() -> None:
    from tests.conftest import free_port

    clock = VirtualClock()
    spec = SimDeviceSpec("ev9", profile("ev-charger-mqtt"))
    site = SimulatedSite(clock, [spec], broker=("127.0.0.1", free_port()))
    with pytest.raises(ConnectionError, match=r"devices\.ev9: cannot reach the MQTT broker"):
        async with site:
            pass


async def test_announced_telemetry_arrives_at_the_instant_it_was_sent(
    mosquitto: Broker, request: pytest.FixtureRequest
) -> None:
    clock = VirtualClock()
    spec = SimDeviceSpec("ev", profile("ev-charger-mqtt"))
    topic = "vpp/announce/ev/telemetry"
    site = SimulatedSite(
        clock,
        [spec],
        site_id="announce",
        broker=(mosquitto.host, mosquitto.port),
        telemetry_period_s=10.0,
        announce_mqtt=True,
    )
    lags: list[float] = []
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier=request.node.name) as c:
        await c.subscribe(topic, qos=0)

        async def receive() -> None:
            async for msg in c.messages:
                body = json.loads(bytes(msg.payload))  # type: ignore[arg-type]
                lags.append((clock.now() - datetime.fromisoformat(body["ts"])).total_seconds())
                clock.arrived(topic)

        receiver = asyncio.create_task(receive())
        async with site:
            await clock.sleep(300)
        receiver.cancel()
    assert len(lags) >= 30  # one every 10 s of clock time, none lost to leaping time
    assert lags == [0.0] * len(lags)
