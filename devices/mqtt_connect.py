"""How every MQTT client of ours connects: one place that turns broker settings (host, port,
client id, credentials, TLS with an optional CA file and client certificate) into an
aiomqtt.Client, for the agent's grid link, the device hub, `vpp event send` and the
simulator's MQTT devices.

It also watches for a session the broker takes away: MQTT 3.1.1 gives the client no reason
when a second connection with the same client id takes its session over (the broker just
closes the socket), so a run of sessions each ended by the broker soon after it began is
reported as an error naming the likely cause.

A clustered broker (a NATS cluster: every node serves the same sessions) is one address and
`failover` nodes: `MqttSettings.node(i)` is the i-th of them (round robin), which a
reconnecting client moves on to when its node drops it, and `connect_first` tries each in
turn for a one-shot client. `protocol` is "3.1.1" (the default, and all that NATS accepts)
or "5"; nothing of ours needs MQTT 5 (docs/operations.md, "A clustered broker (NATS)").
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices.clock import Clock

log = structlog.get_logger("devices.mqtt")

MqttProtocol = Literal["3.1.1", "5"]
"""The MQTT version a client speaks: 3.1.1 (default; NATS refuses 5) or 5."""

SESSION_KEPT_S = 0xFFFFFFFF
"""MQTT 5's session expiry for a persistent session: never (3.1.1's clean_session=False)."""

NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
"""No Nagle delay: small MQTT packets must not wait out Nagle + delayed ACK (40 ms)."""


@dataclass(frozen=True)
class MqttSettings:
    """Where and as whom to connect. `tls` verifies the broker against `ca_file` (default:
    the system's CA store); `cert_file` (and `key_file`, unless the key is in it) is the
    client's certificate for brokers that require one (mTLS). The password is never shown
    in the repr (logs, tracebacks)."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    client_id: str | None = None
    keepalive_s: int = 30
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    protocol: MqttProtocol = "3.1.1"
    failover: tuple[tuple[str, int], ...] = ()
    """Further nodes of the same clustered broker, `(host, port)`, tried after this one."""

    @property
    def address(self) -> str:
        """`host:port`, for logs and errors (never the credentials)."""
        return f"{self.host}:{self.port}"

    @property
    def addresses(self) -> str:
        """Every node's `host:port`, comma-separated (for errors)."""
        return ", ".join(f"{h}:{p}" for h, p in [(self.host, self.port), *self.failover])

    @property
    def node_count(self) -> int:
        """How many nodes: this one and its failover nodes."""
        return 1 + len(self.failover)

    def node(self, i: int) -> MqttSettings:
        """These settings on node `i` (modulo the node count; 0 is `host:port`), the node
        list rotated so that it still names every node."""
        nodes = [(self.host, self.port), *self.failover]
        k = i % len(nodes)
        if k == 0:
            return self
        order = nodes[k:] + nodes[:k]
        return replace(self, host=order[0][0], port=order[0][1], failover=tuple(order[1:]))


def tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    """The TLS context for `settings` (None without TLS). Raises ValueError naming the file
    that cannot be read or is not a certificate or key."""
    if not settings.tls:
        return None
    try:
        ctx = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    except (OSError, ssl.SSLError) as e:
        raise ValueError(f"broker.ca_file: cannot load {settings.ca_file}: {_reason(e)}") from None
    if settings.cert_file is not None:
        try:
            ctx.load_cert_chain(settings.cert_file, settings.key_file)
        except (OSError, ssl.SSLError) as e:
            raise ValueError(
                f"broker.cert_file: cannot load {settings.cert_file}"
                f"{f' with {settings.key_file}' if settings.key_file else ''}: {_reason(e)}"
            ) from None
    return ctx


def _reason(e: OSError) -> str:
    return str(getattr(e, "reason", None) or e.strerror or e)


class SessionWatch:
    """Counts the sessions the broker ended soon after they began. After `threshold` in a
    row, each shorter than `short_s` of clock time, it logs one error naming the likely
    cause (another client with our client id); a session that lasts resets the count."""

    def __init__(
        self, clock: Clock, client_id: str, *, short_s: float = 10.0, threshold: int = 3
    ) -> None:
        self.clock = clock
        self.client_id = client_id
        self.short_s = short_s
        self.threshold = threshold
        self.short_drops = 0
        self.reported = False
        self._since: float | None = None

    def connected(self) -> None:
        """A session began (CONNACK received)."""
        self._since = self.clock.monotonic()

    def dropped(self, address: str, error: str) -> None:
        """The broker ended the session (not a disconnect of ours)."""
        since, self._since = self._since, None
        if since is None:
            return
        if self.clock.monotonic() - since >= self.short_s:
            self.short_drops, self.reported = 1, False
            return
        self.short_drops += 1
        if self.short_drops >= self.threshold and not self.reported:
            self.reported = True
            log.error(
                "mqtt_client_id_in_use",
                client_id=self.client_id,
                broker=address,
                drops=self.short_drops,
                error=error,
                cause=(
                    f"the broker ended {self.short_drops} sessions in a row within "
                    f"{self.short_s:g} s of connecting: most likely another client uses client "
                    f"id {self.client_id!r} and the broker hands the session to the newest "
                    "connection; give each site its own broker.client_id or leave it unset "
                    "(default vpp-<site id>)"
                ),
            )


class MqttClient(aiomqtt.Client):
    """An aiomqtt.Client that tells its SessionWatch when a session begins and when the
    broker ends it."""

    def __init__(self, *args: Any, watch: SessionWatch | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watch = watch
        self._address = f"{args[0]}:{args[1]}" if len(args) > 1 else str(args[0])

    async def __aenter__(self) -> MqttClient:
        await super().__aenter__()
        if self._watch is not None:
            self._watch.connected()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._watch is not None and (error := _broker_error(exc)) is not None:
            self._watch.dropped(self._address, str(error))
        try:
            await super().__aexit__(exc_type, exc, tb)
        finally:
            # A connection the broker dropped while nobody read its messages: aiomqtt keeps
            # the error in a future that no one awaits, and asyncio logs it, traceback and
            # all, when it is collected ("Future exception was never retrieved"). The drop
            # is told by the caller's own MqttError (or the next connect's): read it here.
            gone = self._disconnected
            if gone.done() and not gone.cancelled():
                gone.exception()


def _broker_error(exc: BaseException | None) -> aiomqtt.MqttError | None:
    if isinstance(exc, aiomqtt.MqttError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        group = exc.subgroup(aiomqtt.MqttError)
        if group is not None:
            first = group.exceptions[0]
            return _broker_error(first)
    return None


def mqtt_client(
    settings: MqttSettings,
    *,
    identifier: str | None = None,
    watch: SessionWatch | None = None,
    context: ssl.SSLContext | None = None,
    **options: Any,
) -> MqttClient:
    """A client for `settings` (not connected): client id `identifier` or the settings' own;
    `context` a TLS context made once by `tls_context` (a long-lived client reuses it, so a
    reconnect cannot fail on a file); `options` are further aiomqtt.Client arguments (will,
    clean_session, timeout). Under MQTT 5, `clean_session=False` becomes a session that
    never expires (clean start off)."""
    if settings.protocol == "5":
        options = _mqtt5(options)
    return MqttClient(
        settings.host,
        settings.port,
        identifier=identifier or settings.client_id,
        username=settings.username,
        password=settings.password,
        keepalive=settings.keepalive_s,
        tls_context=context or tls_context(settings),
        socket_options=NODELAY,
        watch=watch,
        **options,
    )


def _mqtt5(options: dict[str, Any]) -> dict[str, Any]:
    """3.1.1's `clean_session` as MQTT 5's clean start and session expiry."""
    out = dict(options)
    keep = out.pop("clean_session", None) is False
    out["protocol"] = aiomqtt.ProtocolVersion.V5
    if keep:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_KEPT_S
        out["clean_start"] = False
        out["properties"] = props
    return out


async def subscribe(client: aiomqtt.Client, topic: str, qos: int = 1) -> None:
    """Subscribe, or raise aiomqtt.MqttError when the broker refuses (a SUBACK failure
    code): a client that went on would be connected but deaf. NATS refuses a subscription
    whose JetStream consumer it cannot create in 5 s (a leader lost with a node)."""
    granted = await client.subscribe(topic, qos=qos)
    codes = [g.value if isinstance(g, ReasonCode) else int(g) for g in granted]
    if any(c >= 0x80 for c in codes):
        raise aiomqtt.MqttError(f"the broker refused the subscription to {topic} ({codes})")


@asynccontextmanager
async def connect_first(
    settings: MqttSettings, topics: Sequence[tuple[str, int]] = (), **options: Any
) -> AsyncIterator[MqttClient]:
    """A client connected to the first node of `settings` that accepts it and its
    subscriptions to `topics` (`(topic, qos)`, in order); each node tried once, in order;
    the last node's aiomqtt.MqttError when none does. `options` as mqtt_client's."""
    error: aiomqtt.MqttError | None = None
    for i in range(settings.node_count):
        stack = AsyncExitStack()
        try:
            client = await stack.enter_async_context(mqtt_client(settings.node(i), **options))
            for topic, qos in topics:
                await subscribe(client, topic, qos)
        except aiomqtt.MqttError as e:
            await stack.aclose()
            error = e
            if i + 1 < settings.node_count:  # the last one's error is the caller's to say
                log.warning("mqtt_node_unreachable", broker=settings.node(i).address, error=str(e))
            continue
        async with stack:
            yield client
        return
    assert error is not None
    raise error
