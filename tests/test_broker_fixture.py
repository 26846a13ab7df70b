"""The test broker is a real Mosquitto that aiomqtt can publish to and receive from."""

from __future__ import annotations

import aiomqtt

from tests.conftest import Broker


async def test_round_trip_through_mosquitto(mosquitto: Broker) -> None:
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="fixture-test") as c:
        await c.subscribe("fixture/echo", qos=1)
        await c.publish("fixture/echo", b"hello", qos=1)
        async for msg in c.messages:
            assert msg.payload == b"hello"
            break
