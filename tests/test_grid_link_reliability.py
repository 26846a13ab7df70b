"""The grid link loses no response or report and recovers fast (issue 13, points 2, 4, 8),
against a real Mosquitto on the wall clock.

- Answers to valid events and reports leave before `rejected` answers, and those before
  telemetry, of which only the newest queued message is sent.
- Responses and reports queued while the broker is away are rows of the store: a new link on
  the same store (the agent started again) sends them, in order, once.
- After a broker restart the link is back within 5 s of the broker's return, and its
  retained status says online again at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from devices.clock import WallClock
from tests.conftest import Broker, free_port, start_mosquitto
from vpp.grid.messages import Response
from vpp.mqtt_link import MqttLink
from vpp.site import BrokerConfig
from vpp.store.store import Store

SITE = "office"
TS = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)


def _response(status: str, event_id: str | None = "e1", modification: int | None = 0) -> Response:
    return Response(event_id=event_id, modification=modification, status=status, ts=TS)  # type: ignore[arg-type]


@asynccontextmanager
async def _grid(broker: Broker, got: list[tuple[str, dict[str, Any]]]) -> AsyncIterator[None]:
    """The grid side: subscribed to everything the site sends, recording (leaf, message)."""
    async with aiomqtt.Client(broker.host, broker.port, identifier="grid-side") as c:
        await c.subscribe(f"vpp/{SITE}/#", qos=1)

        async def listen() -> None:
            async for m in c.messages:
                got.append((str(m.topic).rsplit("/", 1)[1], json.loads(bytes(m.payload))))

        task = asyncio.create_task(listen())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _until(check: Any, wall_s: float) -> None:
    for _ in range(int(wall_s / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not true within {wall_s} s")


@asynccontextmanager
async def _running(link: MqttLink) -> AsyncIterator[None]:
    task = asyncio.create_task(link.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.timeout(60)
async def test_answers_go_before_rejections_and_only_the_newest_telemetry_goes(
    fresh_mosquitto: Broker,
) -> None:
    """Queued while not connected, in this order: telemetry, 30 `rejected`, `received`,
    more telemetry, `opt_in`, a report, the last telemetry. The grid gets `received`,
    `opt_in` and the report first (in their order), then the 30 `rejected` (in theirs),
    then one telemetry message: the newest."""
    broker = BrokerConfig(host=fresh_mosquitto.host, port=fresh_mosquitto.port)
    link = MqttLink(broker, SITE, WallClock(), subscriptions=[], extensions=True)
    link.send_telemetry({"n": 0})
    for i in range(30):
        link.send_response(_response("rejected", event_id=f"bad-{i}", modification=None))
    link.send_response(_response("received"))
    link.send_telemetry({"n": 1})
    link.send_response(_response("opt_in"))
    link.send_report({"event_id": "e1", "final": True})
    link.send_telemetry({"n": 2})
    got: list[tuple[str, dict[str, Any]]] = []
    async with _grid(fresh_mosquitto, got), _running(link):
        await _until(lambda: any(leaf == "telemetry" for leaf, _ in got), 20)
        await link.drain()
        await asyncio.sleep(0.3)  # anything sent after the telemetry would arrive now
    sent = [(leaf, m) for leaf, m in got if leaf != "status"]
    order = [
        (leaf, m.get("status") or m.get("event_id") if leaf != "telemetry" else m["n"])
        for leaf, m in sent
    ]
    assert order[:3] == [("responses", "received"), ("responses", "opt_in"), ("reports", "e1")]
    assert [m["event_id"] for _, m in sent[3:33]] == [f"bad-{i}" for i in range(30)]
    assert order[33:] == [("telemetry", 2)]
    assert link.outbox.replaced == 2


@pytest.mark.timeout(60)
async def test_responses_and_reports_queued_while_away_are_sent_by_the_next_start(
    fresh_mosquitto: Broker, tmp_path: Path
) -> None:
    """Link A on the site's store queues `received`, `opt_in`, a report and `completed`
    while its broker is unreachable, then dies (never closed). Link B on the same store
    sends the four, in order, exactly once; a third start sends nothing again."""
    path = tmp_path / "site.sqlite"
    away = BrokerConfig(host="127.0.0.1", port=free_port())  # nothing listens there
    store_a = Store(path)
    link_a = MqttLink(away, SITE, WallClock(), subscriptions=[], extensions=True, store=store_a)
    got: list[tuple[str, dict[str, Any]]] = []
    async with _running(link_a):
        link_a.send_response(_response("received"))
        link_a.send_response(_response("opt_in"))
        link_a.send_report({"event_id": "e1", "final": True})
        link_a.send_telemetry({"n": 1})  # best effort: not kept
        link_a.send_response(_response("completed"))
        await asyncio.sleep(1.0)  # a few failed connection attempts
    store_a._db.close()  # a kill: what is committed stays, nothing else runs

    broker = BrokerConfig(host=fresh_mosquitto.host, port=fresh_mosquitto.port)
    async with _grid(fresh_mosquitto, got):
        for _ in range(2):
            store = Store(path)
            link = MqttLink(broker, SITE, WallClock(), subscriptions=[], store=store)
            async with _running(link):
                await _until(link.connected.is_set, 10)
                assert await link.drain()
                await asyncio.sleep(0.3)
            assert store.outgoing() == []
            store.close()
    sent = [(leaf, m.get("status")) for leaf, m in got if leaf != "status"]
    assert sent == [
        ("responses", "received"),
        ("responses", "opt_in"),
        ("reports", None),
        ("responses", "completed"),
    ]


@pytest.mark.timeout(90)
async def test_reconnects_within_5_s_of_the_broker_returning_and_says_online(
    tmp_path: Path,
) -> None:
    """The broker stops for 16 s (long enough for a doubling backoff to be at 16 s) and
    starts again on the same port, without persistence (no retained status survives): the
    link's retained `online` is on the broker within 5 s of its return."""
    port = free_port()
    first = start_mosquitto(tmp_path, port)
    link = MqttLink(BrokerConfig(host="127.0.0.1", port=port), SITE, WallClock(), subscriptions=[])
    async with _running(link):
        await _until(link.connected.is_set, 10)
        first.process.terminate()
        first.process.wait(timeout=10)
        await _until(lambda: not link.connected.is_set(), 10)
        await asyncio.sleep(16)
        second = start_mosquitto(tmp_path, port)
        back = time.monotonic()
        try:
            got: list[tuple[str, dict[str, Any]]] = []
            async with _grid(second, got):
                await _until(lambda: ("status", {"v": 1, "online": True}) in got, 30)
                online_after_s = time.monotonic() - back
        finally:
            second.process.terminate()
            second.process.wait(timeout=10)
    assert online_after_s < 5.0, online_after_s
    assert link.connects == 2
