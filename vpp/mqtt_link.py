"""The agent's grid link over our MQTT contract (a vpp.grid.link.GridLink): status with a
last will, a persistent QoS 1 session, an outbox that survives reconnects, and inbound
messages on a queue. The topics, their QoS and retain flags are vpp.grid.topics.SiteTopics.

Nothing is lost across a broker restart: a message leaves the outbox only after the broker
acknowledged it (QoS 1), and the session (fixed client id, clean_session=False) keeps the
grid's events queued for us while we are away.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import json
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import aiomqtt
import structlog

from devices.cancel import cancellable
from devices.clock import Clock
from vpp.grid.link import InboundGridMessage, response_payload
from vpp.grid.messages import ExtendedStatus, Response, Status
from vpp.grid.topics import SiteTopics, Topic
from vpp.measure.contract import contract_report
from vpp.site import BrokerConfig

log = structlog.get_logger(__name__)


def _agent_version() -> str:
    try:
        return importlib.metadata.version("vpp")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


AGENT_VERSION = _agent_version()
"""The `agent_version` of the status message: the installed `vpp` package's version."""


@dataclass(frozen=True)
class Inbound:
    """A message received on a subscribed topic."""

    topic: str
    payload: bytes


@dataclass(frozen=True)
class _Outbound:
    topic: str
    payload: bytes
    qos: int
    retain: bool


def message_key(topic: str, payload: bytes) -> str:
    """Key under which a replay harness `expect()`s a message on the clock."""
    return f"{topic}:{hashlib.sha1(payload).hexdigest()}"


def encode(payload: dict[str, Any]) -> bytes:
    """JSON for the wire: compact, keys sorted (reproducible bytes)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


class MqttLink:
    """Owns one aiomqtt client for the agent; reconnects with backoff on the clock.

    Subscribes to the site's events topic unless told `subscriptions`."""

    def __init__(
        self,
        broker: BrokerConfig,
        site_id: str,
        clock: Clock,
        *,
        subscriptions: list[str] | None = None,
        client_id: str | None = None,
        reconnect_max_s: float = 30.0,
        extensions: bool = False,
    ) -> None:
        self.broker = broker
        self.clock = clock
        self.site_id = site_id
        self.topics = SiteTopics(broker.prefix, site_id)
        self.client_id = client_id or broker.client_id or f"vpp-{site_id}"
        self._inbox: asyncio.Queue[Inbound] = asyncio.Queue()
        self.connected = asyncio.Event()
        self._subscriptions = [self.topics.events.name] if subscriptions is None else subscriptions
        self._outbox: asyncio.Queue[_Outbound] = asyncio.Queue()
        self._reconnect_max_s = reconnect_max_s
        self._client: aiomqtt.Client | None = None
        self.connects = 0
        self.extensions = extensions
        """The site's `grid.extensions`: False publishes the contract's status `{v, online}`,
        True adds `ts`, `site_id`, `agent_version` and `reason`."""

    def publish_nowait(
        self, topic: str, payload: dict[str, Any] | bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Queue a message; it is sent (and re-sent after a reconnect) in order."""
        data = payload if isinstance(payload, bytes) else encode(payload)
        self._outbox.put_nowait(_Outbound(topic, data, qos, retain))

    def _send(self, topic: Topic, payload: dict[str, Any]) -> None:
        self.publish_nowait(topic.name, payload, qos=topic.qos, retain=topic.retain)

    # -- GridLink -------------------------------------------------------------------------

    async def receive(self) -> InboundGridMessage:
        """The next message on the events topic (others, if subscribed, are dropped)."""
        while True:
            msg = await self._inbox.get()
            if msg.topic == self.topics.events.name:
                return InboundGridMessage(msg.payload, msg.topic)

    def send_response(self, response: Response) -> None:
        """On `PREFIX/SITE/responses` (QoS 1)."""
        self._send(self.topics.responses, response_payload(response))

    def send_report(self, report: dict[str, Any]) -> None:
        """On `PREFIX/SITE/reports` (QoS 1): only the contract's fields unless `extensions`."""
        self._send(self.topics.reports, report if self.extensions else contract_report(report))

    def send_telemetry(self, telemetry: dict[str, Any]) -> None:
        """On `PREFIX/SITE/telemetry` (QoS 0)."""
        self._send(self.topics.telemetry, telemetry)

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
        tls_context = ssl.create_default_context() if self.broker.tls else None
        status = self.topics.status
        will = aiomqtt.Will(
            status.name, self.status_payload(False, will=True), qos=status.qos, retain=status.retain
        )
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            socket_options=[
                (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            ],  # no Nagle delay on small packets
            identifier=self.client_id,
            username=self.broker.username,
            password=self.broker.password(),
            clean_session=False,
            will=will,
            keepalive=self.broker.keepalive_s,
            tls_context=tls_context,
            timeout=10,
        )

    async def run(self) -> None:
        """Connect, serve, reconnect: runs until cancelled."""
        backoff = 1.0
        while True:
            try:
                async with self._client_for() as client:
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
                        await cancellable(client.subscribe(topic, qos=1))
                    self.connected.set()
                    if self.connects > 1:
                        log.info(
                            "mqtt_reconnected", broker=f"{self.broker.host}:{self.broker.port}"
                        )
                    backoff = 1.0
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._read(client))
                        tg.create_task(self._write(client))
            except* aiomqtt.MqttError as eg:
                self.connected.clear()
                self._client = None
                # A virtual clock must not wait for messages on their way to a lost link.
                self.clock.release(self._subscriptions)
                log.warning(
                    "mqtt_disconnected",
                    broker=f"{self.broker.host}:{self.broker.port}",
                    error=str(eg.exceptions[0]),
                    retry_s=backoff,
                )
                await self.clock.sleep(backoff)
                backoff = min(backoff * 2, self._reconnect_max_s)

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            data = payload if isinstance(payload, bytes) else str(payload or "").encode()
            topic = str(message.topic)
            await self._inbox.put(Inbound(topic, data))
            self.clock.arrived(message_key(topic, data))

    async def _write(self, client: aiomqtt.Client) -> None:
        while True:
            item = await self._outbox.get()
            try:
                # Time stands still while the broker acknowledges (see MqttHub.publish).
                async with self.clock.hold():
                    await cancellable(
                        client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
                    )
            except aiomqtt.MqttError:
                # Put it back at the front: order matters to the grid (received before opt_in).
                self._requeue_front(item)
                raise
            finally:
                self._outbox.task_done()

    def _requeue_front(self, item: _Outbound) -> None:
        rest: list[_Outbound] = []
        while not self._outbox.empty():
            rest.append(self._outbox.get_nowait())
            self._outbox.task_done()
        for it in [item, *rest]:
            self._outbox.put_nowait(it)

    async def flush(self, wall_timeout_s: float = 1.0) -> None:
        """Let queued messages leave before a long computation blocks the loop (the grid
        must get `received` before the agent starts planning). Time holds still meanwhile."""
        if self._outbox.empty() or not self.connected.is_set():
            return
        async with self.clock.hold():
            await self.drain(wall_timeout_s)

    async def drain(self, wall_timeout_s: float = 5.0) -> bool:
        """Wait (wall time, bounded: used at shutdown) until the broker has every message."""
        if not self.connected.is_set():
            return self._outbox.empty()
        try:
            await asyncio.wait_for(self._outbox.join(), wall_timeout_s)
        except TimeoutError:
            return False
        return True

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
