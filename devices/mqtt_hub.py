"""One MQTT connection shared by many devices: subscriptions fan out to per-topic callbacks.

The hub owns the aiomqtt client and its task; it reconnects with backoff on the injected
clock and re-subscribes every topic after a reconnect, on the next node of a clustered broker
(MqttSettings.failover). A device driver registers a callback
for its telemetry topic and publishes commands through the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from types import TracebackType

import aiomqtt
import structlog

from devices.cancel import cancellable
from devices.clock import Clock
from devices.driver import DeviceError
from devices.mqtt_connect import (
    MqttSettings,
    SessionWatch,
    mqtt_client,
    subscribe,
    tls_context,
)

log = structlog.get_logger("devices.mqtt")

LATE_SUBSCRIBE_TRIES = 5
"""How often a subscription made on a live connection is tried before it waits for the
next reconnect (aiomqtt gives up on a SUBACK after its timeout; a loaded broker can be
that slow)."""

MessageCallback = Callable[[bytes], None]


__all__ = ["MessageCallback", "MqttHub", "MqttSettings"]


class MqttHub:
    """A shared MQTT connection (async context manager owning its reader task)."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        clock: Clock,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self._tls = tls_context(settings)  # once: a bad CA or key file fails here, not later
        self._watch = SessionWatch(clock, settings.client_id) if settings.client_id else None
        self._clock = clock
        # As the grid link's: the site's devices are back within seconds of the broker.
        self._min_s, self._max_s = reconnect_min_s, reconnect_max_s
        self._callbacks: dict[str, list[MessageCallback]] = {}
        self._client: aiomqtt.Client | None = None
        self._node = 0  # which node of a clustered broker (settings.failover)
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_error = ""

    @property
    def connected(self) -> bool:
        """True while the broker connection is up."""
        return self._connected.is_set()

    async def __aenter__(self) -> MqttHub:
        self._task = asyncio.create_task(self._run(), name="mqtt-hub")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait (wall time: the broker is another process) until connected, or TimeoutError."""
        await asyncio.wait_for(self._connected.wait(), timeout_s)

    async def subscribe(self, topic: str, callback: MessageCallback) -> None:
        """Call `callback(payload)` for every message on `topic` (exact topic, QoS 1)."""
        first = topic not in self._callbacks
        self._callbacks.setdefault(topic, []).append(callback)
        if first:
            await self._subscribe_late(topic)

    async def _subscribe_late(self, topic: str) -> None:
        """Subscribe `topic` on the live connection (a reconnect subscribes every topic
        anyway). A failed or unanswered subscription is tried again, on the clock's backoff,
        a bounded number of times: left alone its device would stay deaf until the next
        reconnect. Time stands still while the broker answers."""
        delay = self._min_s
        for attempt in range(1, LATE_SUBSCRIBE_TRIES + 1):
            client = self._client
            if client is None or not self.connected:
                return  # the reconnect subscribes it
            try:
                async with self._clock.hold():
                    await cancellable(subscribe(client, topic, qos=1))
            except aiomqtt.MqttError as e:
                self.last_error = str(e)
                log.warning("mqtt_subscribe_failed", topic=topic, attempt=attempt, reason=str(e))
                await self._clock.sleep(delay)
                delay = min(self._max_s, delay * 2)
            else:
                self._clock.release([topic])  # what was sent before is not for us
                return

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        """Publish, or raise DeviceError when the broker is not reachable now."""
        client = self._client
        if client is None or not self.connected:
            raise DeviceError(f"MQTT broker not connected: {self.last_error or 'connecting'}")
        try:
            # Time stands still while the broker acknowledges: on the virtual clock a publish
            # through an external broker must take no simulated time (replay determinism).
            async with self._clock.hold():
                await cancellable(client.publish(topic, payload, qos=qos))
        except aiomqtt.MqttError as e:
            raise DeviceError(f"MQTT publish failed: {e}") from e

    def _make_client(self) -> aiomqtt.Client:
        return mqtt_client(self.settings.node(self._node), watch=self._watch, context=self._tls)

    async def _run(self) -> None:
        delay = self._min_s
        failed = False
        while True:
            try:
                # `cancellable`: aiomqtt's waits can swallow the cancellation of __aexit__.
                async with contextlib.AsyncExitStack() as stack:
                    # Simulated time stands still while we connect and subscribe (an external
                    # broker answers at the speed of a loaded machine).
                    async with self._clock.hold():
                        client = await cancellable(stack.enter_async_context(self._make_client()))
                        self._client = client
                        for topic in self._callbacks:
                            await cancellable(subscribe(client, topic, qos=1))
                    # Messages sent on these topics before we subscribed never reach us (a
                    # simulated device's first telemetry): a virtual clock must not wait.
                    self._clock.release(self._callbacks)
                    self._connected.set()
                    delay = self._min_s
                    if failed:
                        log.info("mqtt_reconnected", broker=self.settings.node(self._node).address)
                        failed = False
                    async for message in client.messages:
                        self._dispatch(str(message.topic), message.payload)
            except aiomqtt.MqttError as e:
                self.last_error = str(e)
                lost = self.settings.node(self._node).address
                self._node += 1  # a clustered broker: the next node has our session
                if not failed:
                    log.warning("mqtt_disconnected", broker=lost, reason=str(e))
                    failed = True
            finally:
                self._connected.clear()
                self._client = None
                # What was on its way to us is lost with the connection (QoS 0 telemetry;
                # acks of a session the broker did not keep): time need not wait for it.
                self._clock.release(self._callbacks)
            await self._clock.sleep(delay)
            delay = min(self._max_s, delay * 2)

    def _dispatch(self, topic: str, payload: object) -> None:
        data = payload if isinstance(payload, bytes) else str(payload).encode()
        for cb in self._callbacks.get(topic, ()):
            try:
                cb(data)
            except Exception as e:  # one device's bad callback must not stop the others
                log.warning("mqtt_callback_failed", topic=topic, error=repr(e))
        self._clock.arrived(topic)
