"""The agent's grid link over our MQTT contract (a vpp.grid.link.GridLink): status with a
last will, a persistent QoS 1 session, an outbox (vpp.outbox) that survives reconnects and
restarts, and inbound messages on a queue. The topics, their QoS and retain flags are
vpp.grid.topics.SiteTopics.

Nothing is lost across a broker restart or a kill of the agent: a response or report leaves
the outbox (and its store row) only after the broker acknowledged it (QoS 1), and the
session (fixed client id, clean_session=False) keeps the grid's events queued for us while
we are away. Answers to valid events and reports go first, then `rejected` answers, then the
newest telemetry. A lost connection is retried within `reconnect_max_s` (2 s) on the clock,
on the next node of a clustered broker (`broker.failover`): the session lives on there.

Inbound messages go straight from aiomqtt into a bounded inbox (vpp.grid.inbox) that serves
valid-looking events first: a flood of junk neither delays a valid event nor grows memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import importlib.metadata
import json
import socket
from collections.abc import Callable
from typing import Any, cast

import aiomqtt
import structlog

from devices.cancel import cancellable
from devices.clock import Clock
from devices.mqtt_connect import SessionWatch, mqtt_client, subscribe, tls_context
from vpp.broker import connection, default_client_id
from vpp.grid.inbox import Inbox, InboxLimits
from vpp.grid.link import InboundGridMessage, response_payload
from vpp.grid.messages import ExtendedStatus, Response, Status
from vpp.grid.offers import Offer
from vpp.grid.topics import SiteTopics, Topic
from vpp.measure.contract import contract_report
from vpp.outbox import Lane, Outbox, Outgoing
from vpp.site import BrokerConfig
from vpp.store.store import Store

log = structlog.get_logger(__name__)


def _agent_version() -> str:
    try:
        return importlib.metadata.version("vpp")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


AGENT_VERSION = _agent_version()

OFFER_REQUESTS_KEPT = 16
"""Offer requests waiting for their offer at most; an older one is dropped for a newer."""
"""The `agent_version` of the status message: the installed `vpp` package's version."""


class _Arrivals(asyncio.Queue[aiomqtt.Message]):
    """aiomqtt's incoming queue (its `queue_type`) that holds nothing: each message goes
    straight to `arrive` (the link's bounded inbox). aiomqtt's own queue is one FIFO,
    unbounded, or dropping the newest when bounded: a valid event would wait behind a
    flood, or be lost. Iterating `client.messages` then only waits for a lost connection."""

    def __init__(self, arrive: Callable[[aiomqtt.Message], None], maxsize: int = 0) -> None:
        super().__init__()
        self._arrive = arrive

    def put_nowait(self, item: aiomqtt.Message) -> None:
        self._arrive(item)


def message_key(topic: str, payload: bytes) -> str:
    """Key under which a replay harness `expect()`s a message on the clock."""
    return f"{topic}:{hashlib.sha1(payload).hexdigest()}"


# json.dumps(payload, sort_keys=True, separators=(",", ":")) makes this encoder per call.
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def encode(payload: dict[str, Any]) -> bytes:
    """JSON for the wire: compact, keys sorted (reproducible bytes)."""
    return _JSON.encode(payload).encode()


class TelemetryEncoder:
    """`encode` of telemetry payloads, each `devices` entry encoded once per entry object:
    vpp.telemetry.TelemetryBuilder hands the same dict for a device until its next reading
    (most devices are read every minute and published every 5 s), so the JSON of the rest
    is reused. The bytes are `encode(payload)`'s."""

    def __init__(self) -> None:
        # device id → (its entry, '"id":' + the entry's JSON)
        self._entries: dict[str, tuple[object, str]] = {}

    def encode(self, payload: dict[str, Any]) -> bytes:
        devices = payload.get("devices")
        if not isinstance(devices, dict) or not all(type(k) is str for k in devices):
            return encode(payload)
        known = self._entries
        parts = []
        for device_id in sorted(devices):
            entry = devices[device_id]
            hit = known.get(device_id)
            if hit is None or hit[0] is not entry:  # the entry is kept, so its id is not reused
                hit = known[device_id] = (entry, f"{_JSON.encode(device_id)}:{_JSON.encode(entry)}")
            parts.append(hit[1])
        inner = "{" + ",".join(parts) + "}"
        fields = [
            f"{_JSON.encode(k)}:{inner if k == 'devices' else _JSON.encode(v)}"
            for k, v in sorted(payload.items())
        ]
        return ("{" + ",".join(fields) + "}").encode()


class MqttLink:
    """Owns one aiomqtt client for the agent; reconnects with backoff on the clock.

    Subscribes to the site's events topic unless told `subscriptions`. With a `store`, the
    outbox's responses and reports are rows of it until acknowledged, and the rows an
    earlier run left are sent first."""

    def __init__(
        self,
        broker: BrokerConfig,
        site_id: str,
        clock: Clock,
        *,
        subscriptions: list[str] | None = None,
        client_id: str | None = None,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 2.0,
        extensions: bool = False,
        store: Store | None = None,
        inbox: InboxLimits | None = None,
        offers: bool = False,
    ) -> None:
        self.broker = broker
        self.clock = clock
        self.site_id = site_id
        self.topics = SiteTopics(broker.prefix, site_id)
        self.client_id = client_id or broker.client_id or default_client_id(site_id)
        # Credentials and TLS files are read once, here: a bad one is a start-up error.
        self.settings = connection(broker, self.client_id)
        self._tls = tls_context(self.settings)
        self._session_watch = SessionWatch(clock, self.client_id)
        self._inbox = Inbox(inbox)
        self._events_topic = self.topics.events.name
        self.connected = asyncio.Event()
        self._subscriptions = [self.topics.events.name] if subscriptions is None else subscriptions
        self._offer_requests_topic = self.topics.offer_requests.name
        if offers and subscriptions is None:
            self._subscriptions.append(self._offer_requests_topic)
        # Offer requests wait here, the newest OFFER_REQUESTS_KEPT (an offer answers each).
        self._offer_requests: asyncio.Queue[bytes] = asyncio.Queue(OFFER_REQUESTS_KEPT)
        self.outbox = Outbox(clock, store)
        self._telemetry = TelemetryEncoder()
        # Short and capped: a retry against a refused port costs nothing, and the grid wants
        # the site back within seconds of the broker's return (a 30 s cap: 21 s late).
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._client: aiomqtt.Client | None = None
        self._node = 0  # which of the broker's nodes (a cluster's) we connect to
        self.connects = 0
        self.extensions = extensions
        """The site's `grid.extensions`: False publishes the contract's status `{v, online}`,
        True adds `ts`, `site_id`, `agent_version` and `reason`."""

    def publish_nowait(
        self,
        topic: str,
        payload: dict[str, Any] | bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        lane: Lane = Lane.ANSWER,
    ) -> None:
        """Queue a message in `lane`; it is sent (and re-sent after a reconnect) in order
        with the others of its lane."""
        data = payload if isinstance(payload, bytes) else encode(payload)
        self.outbox.put(Outgoing(topic, data, qos, retain, lane))

    def _send(self, topic: Topic, payload: dict[str, Any], lane: Lane) -> None:
        self.publish_nowait(topic.name, payload, qos=topic.qos, retain=topic.retain, lane=lane)

    # -- GridLink -------------------------------------------------------------------------

    async def receive(self) -> InboundGridMessage:
        """The next message on the events topic (others, if subscribed, are dropped), valid-
        looking events first (vpp.grid.inbox)."""
        return await self._inbox.get()

    def send_response(self, response: Response) -> None:
        """On `PREFIX/SITE/responses` (QoS 1); a `rejected` after every other answer."""
        lane = Lane.REJECTED if response.status == "rejected" else Lane.ANSWER
        self._send(self.topics.responses, response_payload(response), lane)

    def send_report(self, report: dict[str, Any]) -> None:
        """On `PREFIX/SITE/reports` (QoS 1): only the contract's fields unless `extensions`."""
        payload = report if self.extensions else contract_report(report)
        self._send(self.topics.reports, payload, Lane.ANSWER)

    def send_telemetry(self, telemetry: dict[str, Any]) -> None:
        """On `PREFIX/SITE/telemetry` (QoS 0): the newest only, when nothing else waits."""
        t = self.topics.telemetry
        data = self._telemetry.encode(telemetry)
        self.publish_nowait(t.name, data, qos=t.qos, retain=t.retain, lane=Lane.LATEST)

    def send_offer(self, offer: Offer) -> None:
        """On `PREFIX/SITE/offers` (QoS 1, retained): the newest queued offer only."""
        self._send(self.topics.offers, offer.model_dump(mode="json"), Lane.LATEST)

    async def receive_offer_request(self) -> bytes:
        """The next payload on `PREFIX/SITE/offer_requests` (subscribed with `offers`)."""
        return await self._offer_requests.get()

    def status_payload(self, online: bool, *, will: bool = False) -> bytes:
        """The retained status: online, or offline on a clean shutdown. Exactly the
        contract's `{"v": 1, "online": ...}` (vpp.grid.messages.Status), or with
        `extensions` also `ts`, `site_id`, `agent_version` and `reason` (ExtendedStatus);
        the last will (`will=True`) is always just `{"v": 1, "online": false}`, the broker
        sends it whenever the link drops."""
        status: Status
        if will or not self.extensions:
            status = Status(online=online and not will)
        else:
            status = ExtendedStatus(
                online=online,
                ts=self.clock.now(),
                site_id=self.site_id,
                agent_version=AGENT_VERSION,
                reason=None if online else "agent stopped",
            )
        return encode(status.model_dump(mode="json", exclude_none=True))

    def _client_for(self) -> aiomqtt.Client:
        status = self.topics.status
        will = aiomqtt.Will(
            status.name, self.status_payload(False, will=True), qos=status.qos, retain=status.retain
        )
        return mqtt_client(
            self.settings.node(self._node),
            watch=self._session_watch,
            context=self._tls,
            clean_session=False,
            will=will,
            timeout=10,
            queue_type=self._arrivals_queue(),
        )

    @property
    def address(self) -> str:
        """`host:port` of the broker node this link connects (or last connected) to."""
        return self.settings.node(self._node).address

    def _arrivals_queue(self) -> type[asyncio.Queue[aiomqtt.Message]]:
        """aiomqtt's `queue_type` (called with `maxsize=`): see _Arrivals."""
        return cast(
            "type[asyncio.Queue[aiomqtt.Message]]", functools.partial(_Arrivals, self._arrive)
        )

    async def run(self) -> None:
        """Connect, serve, reconnect: runs until cancelled."""
        backoff = self._reconnect_min_s
        while True:
            try:
                async with contextlib.AsyncExitStack() as stack:
                    # Simulated time stands still while we connect and subscribe: on a loaded
                    # machine the clock leapt past a grid event sent meanwhile (lost: the
                    # broker had no session of ours yet).
                    async with self.clock.hold():
                        client = await stack.enter_async_context(self._client_for())
                        self._client = client
                        self.connects += 1
                        # cancellable: aiomqtt's waits can swallow a stop (devices/cancel.py).
                        status = self.topics.status
                        await cancellable(
                            client.publish(
                                status.name,
                                self.status_payload(True),
                                qos=status.qos,
                                retain=status.retain,
                            )
                        )
                        for topic in self._subscriptions:
                            await cancellable(subscribe(client, topic, qos=1))
                    self.connected.set()
                    if self.connects > 1:
                        log.info("mqtt_reconnected", broker=self.address)
                    backoff = self._reconnect_min_s
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._read(client))
                        tg.create_task(self._write(client))
            except* aiomqtt.MqttError as eg:
                self.connected.clear()
                self._client = None
                # A virtual clock must not wait for messages on their way to a lost link.
                self.clock.release(self._subscriptions)
                lost = self.address
                # A clustered broker: the next node serves the same session.
                self._node += 1
                log.warning(
                    "mqtt_disconnected",
                    broker=lost,
                    error=str(eg.exceptions[0]),
                    retry_s=backoff,
                    next_broker=self.address,
                )
                await self.clock.sleep(backoff)
                backoff = min(backoff * 2, self._reconnect_max_s)

    async def _read(self, client: aiomqtt.Client) -> None:
        # Messages never reach this iterator (see _Arrivals): it ends on a lost connection.
        async for _ in client.messages:
            pass

    def _arrive(self, message: aiomqtt.Message) -> None:
        """One message as the socket delivers it (in aiomqtt's reader callback): into the
        inbox if on the events topic, then tell the clock (a replay awaits its key)."""
        payload = message.payload
        data = payload if isinstance(payload, bytes) else str(payload or "").encode()
        topic = str(message.topic)
        if topic == self._events_topic:
            self._inbox.put(data, topic)
        elif topic == self._offer_requests_topic:
            if self._offer_requests.full():
                self._offer_requests.get_nowait()
                log.warning("offer_request_dropped", reason="too many waiting")
            self._offer_requests.put_nowait(data)
        self.clock.arrived(message_key(topic, data))

    async def _write(self, client: aiomqtt.Client) -> None:
        while True:
            item = await self.outbox.take()
            try:
                # Time stands still while the broker acknowledges (see MqttHub.publish).
                async with self.clock.hold():
                    await cancellable(
                        client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
                    )
            except BaseException:
                # Back at the front of its lane: order matters (received before opt_in).
                self.outbox.give_back(item)
                raise
            self.outbox.sent(item)

    async def flush(self, wall_timeout_s: float = 1.0) -> None:
        """Let queued messages leave before a long computation blocks the loop (the grid
        must get `received` before the agent starts planning). Time holds still meanwhile."""
        if self.outbox.empty() or not self.connected.is_set():
            return
        async with self.clock.hold():
            await self.drain(wall_timeout_s)

    async def drain(self, wall_timeout_s: float = 5.0) -> bool:
        """Wait (wall time, bounded: used at shutdown) until the broker has every message."""
        if not self.connected.is_set():
            return self.outbox.empty()
        try:
            await asyncio.wait_for(self.outbox.join(), wall_timeout_s)
        except TimeoutError:
            return False
        return True

    def abort(self) -> None:
        """Cut the connection without a DISCONNECT, as a killed process's does: the broker
        publishes the last will (offline, retained). For replays and tests."""
        client = self._client
        sock = client._client.socket() if client is not None else None  # aiomqtt has no abort
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    async def close(self) -> None:
        """Publish status offline (retained) and disconnect cleanly."""
        await self.drain()
        client = self._client
        status = self.topics.status
        if client is not None and self.connected.is_set():
            try:
                await client.publish(
                    status.name,
                    self.status_payload(False),
                    qos=status.qos,
                    retain=status.retain,
                    timeout=5,
                )
            except aiomqtt.MqttError as e:
                log.warning("mqtt_offline_status_failed", error=str(e))
