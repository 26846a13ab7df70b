"""Several grid links as one (vpp.grid.fanout): each answer goes back on the link its event
came from, telemetry on every link. Two real MQTT links (two site ids on one real Mosquitto)
stand in for the native contract and an OpenADR link, whose own tests exercise their wire."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from devices.clock import WallClock
from tests.conftest import Broker
from vpp.grid.fanout import FanoutLink
from vpp.grid.messages import Response
from vpp.mqtt_link import MqttLink
from vpp.site import BrokerConfig, GridConfig
from vpp.store.store import Store

TS = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)


def _response(status: str, event_id: str | None) -> Response:
    return Response(event_id=event_id, modification=0, status=status, ts=TS)  # type: ignore[arg-type]


async def _until(check: Any, wall_s: float) -> None:
    for _ in range(int(wall_s / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not true within {wall_s} s")


@pytest.mark.timeout(60)
async def test_answers_go_back_on_the_link_their_event_came_from(
    mosquitto: Broker, tmp_path: Path
) -> None:
    cfg = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    clock = WallClock()
    links = {
        site: MqttLink(cfg, site, clock, store=Store(tmp_path / f"{site}.sqlite"), extensions=True)
        for site in ("site-a", "site-b")
    }
    fan = FanoutLink(links)
    got: list[tuple[str, str, dict[str, Any]]] = []
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="grid-side") as grid:
        await grid.subscribe("vpp/+/+", qos=1)

        async def listen() -> None:
            async for m in grid.messages:
                _, site, leaf = str(m.topic).split("/")
                if leaf == "events":  # our own publishes
                    continue
                got.append((site, leaf, json.loads(bytes(m.payload))))

        listener = asyncio.create_task(listen())
        runner = asyncio.create_task(fan.run())
        try:
            await _until(lambda: sum(leaf == "status" for _, leaf, _ in got) >= 2, 10)
            await grid.publish("vpp/site-b/events", json.dumps({"event_id": "from-b"}), qos=1)
            msg = await asyncio.wait_for(fan.receive(), 10)
            assert json.loads(msg.payload)["event_id"] == "from-b"
            fan.send_response(_response("received", "from-b"))
            # A message without a usable id is answered on the link it came in on.
            await grid.publish("vpp/site-a/events", b"not json", qos=1)
            msg = await asyncio.wait_for(fan.receive(), 10)
            assert msg.payload == b"not json"
            fan.send_response(_response("rejected", None))
            # The earlier event keeps its link although the last message came from the other.
            fan.send_report({"event_id": "from-b", "final": True})
            fan.send_telemetry({"n": 1})
            await _until(lambda: sum(leaf == "telemetry" for _, leaf, _ in got) >= 2, 10)
            await _until(lambda: any(leaf == "reports" for _, leaf, _ in got), 10)
            await _until(lambda: sum(leaf == "responses" for _, leaf, _ in got) >= 2, 10)
        finally:
            runner.cancel()
            listener.cancel()
            for task in (runner, listener):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await fan.close()
    answers = {(site, m["status"]) for site, leaf, m in got if leaf == "responses"}
    assert answers == {("site-b", "received"), ("site-a", "rejected")}
    assert {site for site, leaf, _ in got if leaf == "reports"} == {"site-b"}
    assert {site for site, leaf, _ in got if leaf == "telemetry"} == {"site-a", "site-b"}


def test_a_site_without_any_grid_link_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="mqtt: false needs openadr3 or openadr2b"):
        GridConfig.model_validate({"mqtt": False})
    assert GridConfig.model_validate({}).mqtt is True
