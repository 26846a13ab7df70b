"""A valid event's answers leave ahead of queued rejections and telemetry (a flood's
rejections must not delay `received`), in their own order; the rejections keep theirs, and
of the telemetry only the newest is sent. Through a
real Mosquitto: what the link queued while not yet connected, as a subscriber sees it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import aiomqtt

from devices.clock import WallClock
from tests.conftest import Broker
from vpp.grid.messages import Response
from vpp.mqtt_link import MqttLink
from vpp.site import BrokerConfig

TS = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)


def _response(status: str, event_id: str | None) -> Response:
    reason = "Invalid event message: not JSON." if status == "rejected" else None
    return Response(event_id=event_id, modification=0, status=status, reason=reason, ts=TS)  # type: ignore[arg-type]


async def test_valid_answers_go_ahead_of_rejections_and_telemetry(
    fresh_mosquitto: Broker,
) -> None:
    link = MqttLink(
        BrokerConfig(host=fresh_mosquitto.host, port=fresh_mosquitto.port), "s1", WallClock()
    )
    for i in range(3):
        link.send_response(_response("rejected", None))
        link.send_telemetry({"v": 1, "n": i})
    link.send_response(_response("received", "ev-1"))
    link.send_response(_response("rejected", None))
    link.send_response(_response("opt_in", "ev-1"))
    got: list[str] = []
    async with aiomqtt.Client(fresh_mosquitto.host, fresh_mosquitto.port) as grid:
        await grid.subscribe("vpp/s1/responses", qos=1)
        await grid.subscribe("vpp/s1/telemetry", qos=1)
        run = asyncio.create_task(link.run())
        try:
            async with asyncio.timeout(20):
                async for m in grid.messages:
                    doc = json.loads(bytes(m.payload))  # type: ignore[arg-type]
                    got.append(f"telemetry {doc['n']}" if "n" in doc else doc["status"])
                    if len(got) == 7:
                        break
        finally:
            run.cancel()
    # Lanes (vpp/outbox.py): answers to valid events, then rejections, then only the newest
    # telemetry (a stale one is replaced, not piled up).
    assert got == [
        "received",
        "opt_in",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "telemetry 2",
    ]
