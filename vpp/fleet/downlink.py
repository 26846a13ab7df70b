"""The aggregator's side of the sites' contract: one MQTT connection that reads every member
site's offers, status, telemetry, responses and reports (five wildcard subscriptions) and
publishes their events (QoS 1): in order per site, all sites at once (a fan-out to 1 000
sites must not wait for 1 000 acknowledgements in a row), kept across reconnects.

"All at once" needs a wide in-flight window: paho lets 20 QoS 1 messages await their PUBACK
by default and holds the rest back, so a fan-out to 282 sites went out in 15 rounds, each one
broker commit (NATS: a JetStream R3 store) plus a wake-up of this process: 1.3 s to the last
PUBACK on a loaded machine, 0.2 s with the window open (docs/performance.md, "The fleet on
NATS"). Each site topic has at most one message in flight (its order), so a window of two
per site (events, offer requests) never holds one back. Offer requests are not urgent and
each makes its site publish a fresh offer (~16 KB, retained): at most
OFFER_REQUESTS_IN_FLIGHT of them are on the wire at once, so a thousand asked at start-up
come as a paced stream, not one burst that the broker must store beside the events.

A persistent session (fixed client id, clean_session=False): the sites' answers and reports
sent while the aggregator is away wait at the broker for it. On a clustered broker (NATS:
`broker.failover`) a lost connection moves on to the next node, which serves the same
session."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import aiomqtt
import structlog

from devices.cancel import cancellable
from devices.clock import Clock
from devices.mqtt_connect import mqtt_client, subscribe, tls_context
from vpp.broker import connection
from vpp.fleet.book import LEAVES
from vpp.grid.messages import Event
from vpp.grid.offers import OfferRequest
from vpp.grid.topics import SiteTopics
from vpp.outbox import Outgoing
from vpp.site import BrokerConfig

log = structlog.get_logger(__name__)

MAX_INFLIGHT = 60_000
"""The widest in-flight window: MQTT packet ids are 16 bits (65 535 in use at most)."""

OFFER_REQUESTS_IN_FLIGHT = 20
"""Offer requests awaiting their PUBACK at once (events are not held back by them)."""

DELIVERIES_KEPT = 10_000
"""How many of the latest sent messages `SiteLink.deliveries` keeps."""


def inflight_window(sites: int) -> int:
    """The QoS 1 messages the sites' link lets await their PUBACK at once: two per site (an
    event and an offer request can be in flight together), at least paho's default 20."""
    return min(MAX_INFLIGHT, max(20, 2 * sites))


@dataclass(frozen=True)
class Delivery:
    """One message to a site: when it was queued, handed to the client (its turn in its
    topic's order) and acknowledged by the broker (PUBACK), on the link's clock."""

    topic: str
    queued: datetime
    published: datetime
    acked: datetime


class SiteLink:
    """Reads the sites' topics into `on_message(topic, payload)`; sends them events."""

    def __init__(
        self,
        broker: BrokerConfig,
        district_id: str,
        clock: Clock,
        on_message: Callable[[str, bytes], None],
        extra_filters: tuple[str, ...] = (),
        *,
        sites: int = 1,
    ) -> None:
        """`sites`: how many sites it sends to (sizes the in-flight window)."""
        self.broker = broker
        self.clock = clock
        self.client_id = f"vpp-aggr-{district_id}-sites"
        self.settings = connection(broker, self.client_id)
        self._tls = tls_context(self.settings)
        self._on_message = on_message
        self.max_inflight = inflight_window(sites)
        self._pending: dict[str, deque[tuple[Outgoing, datetime]]] = {}  # topic → in order
        self._queued = 0  # messages in _pending
        self._busy: set[str] = set()  # topics being sent now
        self._paced: set[str] = set()  # offer request topics
        self._offer_slots = asyncio.Semaphore(OFFER_REQUESTS_IN_FLIGHT)
        self._changed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.connected = asyncio.Event()
        self._node = 0  # which of the broker's nodes (a cluster's) we connect to
        self.connects = 0
        self.filters = [f"{broker.prefix}/+/{leaf}" for leaf in LEAVES] + list(extra_filters)
        self.deliveries: deque[Delivery] = deque(maxlen=DELIVERIES_KEPT)
        """The latest messages the broker acknowledged, oldest first (benches, diagnosis)."""

    def send_event(self, site_id: str, event: Event) -> None:
        """Queue `event` for `PREFIX/SITE/events` (QoS 1)."""
        topic = SiteTopics(self.broker.prefix, site_id).events
        self._put(Outgoing(topic.name, event.to_json(), topic.qos, False))

    def _put(self, item: Outgoing) -> None:
        self._pending.setdefault(item.topic, deque()).append((item, self.clock.now()))
        self._queued += 1
        self._idle.clear()
        self._changed.set()

    def request_offer(self, site_id: str, request: OfferRequest) -> None:
        """Queue an offer request for `PREFIX/SITE/offer_requests` (QoS 1)."""
        topic = SiteTopics(self.broker.prefix, site_id).offer_requests
        self._paced.add(topic.name)
        self._put(Outgoing(topic.name, request.to_json(), topic.qos, False))

    async def run(self) -> None:
        """Connect, subscribe, serve, reconnect (within 2 s on the clock) until cancelled."""
        while True:
            try:
                async with mqtt_client(
                    self.settings.node(self._node),
                    context=self._tls,
                    clean_session=False,
                    timeout=10,
                    max_inflight_messages=self.max_inflight,
                ) as client:
                    # aiomqtt warns past 10 publishes awaiting a PUBACK: a fan-out has hundreds.
                    client.pending_calls_threshold = self.max_inflight
                    async with self.clock.hold():
                        for f in self.filters:
                            await cancellable(subscribe(client, f, qos=1))
                    self.connects += 1
                    self.connected.set()
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._read(client))
                        tg.create_task(self._write(client))
            except* aiomqtt.MqttError as eg:
                self.connected.clear()
                self._busy.clear()
                lost = self.settings.node(self._node).address
                self._node += 1  # a clustered broker: the next node serves the same session
                log.warning(
                    "fleet_sites_link_lost",
                    broker=lost,
                    error=str(eg.exceptions[0]),
                    next_broker=self.settings.node(self._node).address,
                )
                await self.clock.sleep(1.0)

    async def _read(self, client: aiomqtt.Client) -> None:
        async for m in client.messages:
            data = m.payload if isinstance(m.payload, bytes) else str(m.payload or "").encode()
            try:
                self._on_message(str(m.topic), data)
            except Exception:  # one message never ends the aggregator
                log.exception("fleet_site_message_failed", topic=str(m.topic))

    async def _write(self, client: aiomqtt.Client) -> None:
        async with asyncio.TaskGroup() as tg:
            while True:
                await self._changed.wait()
                self._changed.clear()
                for topic, queue in self._pending.items():
                    if queue and topic not in self._busy:
                        self._busy.add(topic)
                        tg.create_task(self._send_topic(client, topic, queue))

    async def _send_topic(
        self, client: aiomqtt.Client, topic: str, queue: deque[tuple[Outgoing, datetime]]
    ) -> None:
        """Send one site's queued messages in order; each leaves the queue once the broker
        has acknowledged it (a lost connection leaves it first in line)."""
        slots = self._offer_slots if topic in self._paced else contextlib.nullcontext()
        try:
            while queue:
                item, queued = queue[0]
                async with slots:
                    published = self.clock.now()
                    async with self.clock.hold():
                        await cancellable(client.publish(item.topic, item.payload, qos=item.qos))
                queue.popleft()
                self._queued -= 1
                self.deliveries.append(Delivery(topic, queued, published, self.clock.now()))
        finally:
            self._busy.discard(topic)
            if not self._queued:
                self._idle.set()

    def idle(self) -> bool:
        """True when the broker has acknowledged every queued message."""
        return self._idle.is_set()

    async def drain(self, wall_timeout_s: float = 5.0) -> None:
        """Wait (wall time, bounded) until the broker has every queued event."""
        if self.connected.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), wall_timeout_s)
