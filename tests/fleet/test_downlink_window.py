"""The sites' link sends a fan-out all at once: against a broker that holds back its PUBACKs,
every site's event is on the wire before the first acknowledgement (paho alone lets 20 wait
for theirs and holds the rest back: a fan-out to 300 sites then took 15 round trips). The
peer is a minimal MQTT 3.1.1 broker of the test's own on a port from the OS; it acknowledges
once it has them all, and the link goes idle with each message's times recorded."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

from devices.clock import WallClock
from vpp.fleet.downlink import OFFER_REQUESTS_IN_FLIGHT, SiteLink, inflight_window
from vpp.grid.messages import Event
from vpp.grid.offers import OfferRequest
from vpp.site import BrokerConfig

SITES = 300
CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 1, 2, 3, 4, 8, 9
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14


class HoldingBroker:
    """Accepts one MQTT client; answers CONNECT, SUBSCRIBE and PINGREQ; records the packet
    id of each QoS 1 PUBLISH and acknowledges none until `release` is set."""

    def __init__(self) -> None:
        self.published: list[int] = []
        self.topics: set[str] = set()
        self.release = asyncio.Event()
        self.all_in = asyncio.Event()
        self.expected = 0
        self.writer: asyncio.StreamWriter | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                kind, body = await _packet(reader)
                if kind == CONNECT:
                    writer.write(bytes([CONNACK << 4, 2, 0, 0]))
                elif kind == SUBSCRIBE:
                    n_filters = _count_filters(body[2:])
                    writer.write(
                        bytes([SUBACK << 4, 2 + n_filters]) + body[:2] + b"\x01" * n_filters
                    )
                elif kind == PINGREQ:
                    writer.write(bytes([PINGRESP << 4, 0]))
                elif kind == PUBLISH:
                    tlen = int.from_bytes(body[:2], "big")
                    self.topics.add(body[2 : 2 + tlen].decode())
                    self.published.append(int.from_bytes(body[2 + tlen : 4 + tlen], "big"))
                    if len(self.published) >= self.expected:
                        self.all_in.set()
                    if not self.release.is_set():
                        continue
                    self._ack(writer, self.published[-1])
                elif kind == DISCONNECT:
                    return
                await writer.drain()

    def _ack(self, writer: asyncio.StreamWriter, pid: int) -> None:
        writer.write(bytes([PUBACK << 4, 2]) + pid.to_bytes(2, "big"))

    async def ack_all(self) -> None:
        """Acknowledge what came so far, and from now on each PUBLISH as it comes."""
        assert self.writer is not None
        self.release.set()
        for pid in self.published:
            self._ack(self.writer, pid)
        await self.writer.drain()


async def _packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        b = (await reader.readexactly(1))[0]
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return head >> 4, await reader.readexactly(length)


def _count_filters(payload: bytes) -> int:
    n, i = 0, 0
    while i < len(payload):
        i += 2 + int.from_bytes(payload[i : i + 2], "big") + 1
        n += 1
    return n


@contextlib.asynccontextmanager
async def holding_broker() -> AsyncIterator[tuple[HoldingBroker, list[asyncio.StreamWriter], int]]:
    peer = HoldingBroker()
    writers: list[asyncio.StreamWriter] = []

    async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        writers.append(w)
        await peer.serve(r, w)

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield peer, writers, port


def _event(site: str, now: datetime) -> Event:
    start = (now + timedelta(hours=1)).isoformat()
    return Event.model_validate(
        {
            "v": 1,
            "event_id": f"e-{site}",
            "modification": 0,
            "signal": "curtail_kw",
            "intervals": [{"start": start, "duration": "PT15M", "value": 10.0}],
        }
    )


async def _within(check: Callable[[], bool], wall_s: float) -> bool:
    """Wait (bounded, wall) until `check()` is true; whether it became true."""
    end = time.monotonic() + wall_s
    while not check():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.01)
    return True


def test_the_window_holds_two_messages_per_site_within_the_packet_ids() -> None:
    assert inflight_window(1) == 20
    assert inflight_window(1000) == 2000
    assert inflight_window(10**6) < 65535


@contextlib.asynccontextmanager
async def linked(sites: int) -> AsyncIterator[tuple[HoldingBroker, SiteLink, list[str]]]:
    """A sites link for `sites` sites, connected to a holding broker; the site ids."""
    async with holding_broker() as (peer, writers, port):
        peer.expected = sites
        broker = BrokerConfig.from_url(f"mqtt://127.0.0.1:{port}")
        link = SiteLink(broker, "d1", WallClock(), lambda topic, payload: None, sites=sites)
        task = asyncio.create_task(link.run())
        try:
            await asyncio.wait_for(link.connected.wait(), 10)
            peer.writer = writers[0]
            yield peer, link, [f"s{i:03d}" for i in range(sites)]
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_fan_out_is_on_the_wire_before_the_first_puback() -> None:
    async with linked(SITES) as (peer, link, sites):
        now = datetime.now(UTC)
        for site in sites:
            link.send_event(site, _event(site, now))
        assert not link.idle()
        # Bounded wait: paho's default window would stop at 20 here, however long.
        assert await _within(peer.all_in.is_set, 20.0), len(peer.published)
        assert len(set(peer.published)) == SITES  # distinct packet ids, none acked
        assert peer.topics == {f"vpp/{s}/events" for s in sites}
        assert not link.deliveries and not link.idle()
        await peer.ack_all()
        assert await _within(link.idle, 20.0)
        assert {d.topic for d in link.deliveries} == peer.topics
        assert all(d.queued <= d.published <= d.acked for d in link.deliveries)


async def test_offer_requests_are_paced_and_do_not_hold_back_events() -> None:
    """100 offer requests and then 100 events: every event reaches the broker while at most
    OFFER_REQUESTS_IN_FLIGHT offer requests are on the wire (none acknowledged yet); once
    the broker acknowledges, the rest of the requests follow and the link goes idle."""
    async with linked(100) as (peer, link, sites):
        now = datetime.now(UTC)
        for site in sites:
            link.request_offer(site, OfferRequest(request_id=f"r-{site}", ts=now))
        for site in sites:
            link.send_event(site, _event(site, now))
        events = {f"vpp/{s}/events" for s in sites}
        assert await _within(lambda: events <= peer.topics, 20.0), len(peer.topics)
        requests = peer.topics - events
        assert len(requests) == OFFER_REQUESTS_IN_FLIGHT, len(requests)
        await peer.ack_all()
        assert await _within(link.idle, 20.0)
        assert peer.topics == events | {f"vpp/{s}/offer_requests" for s in sites}
