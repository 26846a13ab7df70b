"""A task cancelled while its MQTT publish is being acknowledged still ends (real Mosquitto).

On Python 3.11 aiomqtt's `wait_for` returns normally when the cancellation and the PUBACK
land in the same loop turn (CPython gh-86296). The tests make that race certain: the
broker's PUBACK is handled by aiomqtt's own callback, then the publisher is cancelled at
once, before the loop turns.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt
import pytest

from devices.cancel import cancellable
from devices.clock import VirtualClock
from devices.mqtt_hub import MqttHub, MqttSettings
from tests.conftest import Broker


def cancel_at_puback(client: aiomqtt.Client, victim: list[asyncio.Task[Any]]) -> None:
    """After aiomqtt has handled the next PUBACK on `client`, cancel `victim[0]`."""
    paho = client._client  # the paho client under aiomqtt
    handled = paho.on_publish

    def on_publish(*args: Any) -> None:
        handled(*args)
        paho.on_publish = handled
        victim[0].cancel()

    paho.on_publish = on_publish


async def test_a_cancel_meeting_the_puback_still_cancels(
    mosquitto: Broker, request: pytest.FixtureRequest
) -> None:
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier=request.node.name) as c:
        after: list[str] = []

        async def publisher() -> None:
            await cancellable(c.publish("t/cancel", b"x", qos=1))
            after.append("went on")  # what a swallowed cancellation lets happen

        victim: list[asyncio.Task[Any]] = []
        cancel_at_puback(c, victim)
        victim.append(asyncio.create_task(publisher()))
        done, _ = await asyncio.wait(victim, timeout=5)
        assert done and victim[0].cancelled()
        assert after == []
        # Without a cancellation the result comes through.
        assert await cancellable(c.publish("t/cancel", b"y", qos=1)) is None


async def test_hub_publish_cancelled_at_its_puback_raises(mosquitto: Broker) -> None:
    clock = VirtualClock()
    settings = MqttSettings(mosquitto.host, mosquitto.port, client_id="cancel-hub")
    async with MqttHub(settings, clock=clock) as hub:
        await hub.wait_connected(10)
        assert hub._client is not None
        victim: list[asyncio.Task[Any]] = []
        cancel_at_puback(hub._client, victim)
        victim.append(asyncio.create_task(hub.publish("t/hub", b"x")))
        done, _ = await asyncio.wait(victim, timeout=5)
        assert done and victim[0].cancelled()
