"""A connection the broker drops (real Mosquitto, killed) while the client is not reading
leaves no "Future exception was never retrieved" behind: asyncio would log it with a
traceback in the agent's log, long after the drop was handled."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from devices.mqtt_connect import MqttSettings, mqtt_client
from tests.conftest import Broker


async def test_a_dropped_connection_leaves_no_unretrieved_error(fresh_mosquitto: Broker) -> None:
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx))
    try:
        settings = MqttSettings(fresh_mosquitto.host, fresh_mosquitto.port)
        client = mqtt_client(settings, identifier="drop-probe")
        async with client:
            fresh_mosquitto.process.kill()
            fresh_mosquitto.process.wait(10)
            # Until paho has seen the socket close (asyncio.wait reads no result).
            await asyncio.wait({client._disconnected}, timeout=10)
            assert client._disconnected.done()
        del client
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert [c.get("message") for c in seen] == []
