"""Serves a simulated device through an MQTT broker, per its MqttProfile.

Telemetry: a JSON object of the profile's fields plus `ts` (ISO 8601, UTC), published every
`period_s` of clock time on the telemetry topic (QoS 0), and right after each command.
Commands: a JSON object of writable fields (optionally `cmd_id`) on the command topic; all
fields are checked (known, writable, right type, within min/max) before any is applied.
Each command is answered on `<command topic>/ack` with `{"cmd_id", "ok", "error"?, "ts"}`.
State (availability): retained `{"online": true}` on the state topic once connected,
`{"online": false}` as the Will (a lost connection: `crash()`), on a clean disconnect
(`stop()`) and from `say_online(False)` (out of service while still connected).

Under a VirtualClock the server calls `clock.arrived(<command topic>)` on each command, so a
controller that calls `clock.expect(<command topic>)` before publishing holds time still
until the command is in. With `announce=True` (replay, where the receiver runs in this
process) the server calls `clock.expect(<telemetry topic>)` before each telemetry message
and `clock.expect(<command topic>/ack)` before each ack; the receiver must call
`clock.arrived(<topic>)` for each, and time stands still until it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import socket
from dataclasses import replace
from typing import Any

import aiomqtt

from devices.cancel import cancellable
from devices.clock import Clock
from devices.mqtt_connect import MqttSettings, mqtt_client, subscribe, tls_context
from devices.profile import MqttPoint, MqttProfile
from simulators.device import ServedDevice

log = logging.getLogger(__name__)


def _mqtt_error(group: BaseExceptionGroup[BaseException]) -> aiomqtt.MqttError | None:
    """The MQTT error of a task group's failure, if it is only that (a dropped broker)."""
    match, rest = group.split(aiomqtt.MqttError)
    if match is None or rest is not None:
        return None
    first = match.exceptions[0]
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first if isinstance(first, aiomqtt.MqttError) else None


class CommandError(ValueError):
    """A command that cannot be applied; the message names the field."""


def parse_command(profile: MqttProfile, payload: bytes) -> tuple[Any, dict[str, float]]:
    """(cmd_id, point values) of a JSON command, or CommandError naming the field."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise CommandError(f"not JSON: {e}") from e
    if not isinstance(data, dict):
        raise CommandError("a command is a JSON object")
    cmd_id = data.pop("cmd_id", None)
    data.pop("ts", None)
    by_field = {p.field: (name, p) for name, p in profile.points.items()}
    out: dict[str, float] = {}
    for field, raw in data.items():
        if field not in by_field:
            raise CommandError(f"{field}: unknown field")
        name, p = by_field[field]
        if p.access != "rw":
            raise CommandError(f"{field}: read-only")
        out[name] = _check_value(field, p, raw)
    if not out:
        raise CommandError("no field to write")
    return cmd_id, out


def _check_value(field: str, p: MqttPoint, raw: Any) -> float:
    if p.type == "bool":
        if not isinstance(raw, bool | int) or raw not in (0, 1):
            raise CommandError(f"{field}: expected a boolean")
        return float(bool(raw))
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise CommandError(f"{field}: expected a number")
    if p.type == "int" and raw != int(raw):
        raise CommandError(f"{field}: expected an integer")
    if (p.min is not None and raw < p.min) or (p.max is not None and raw > p.max):
        raise CommandError(f"{field}: {raw} outside [{p.min}, {p.max}]")
    return float(raw)


def telemetry_payload(profile: MqttProfile, values: dict[str, float], ts: str) -> str:
    """JSON telemetry of every profile point (fields as named in the profile)."""
    out: dict[str, Any] = {"ts": ts}
    for name, p in profile.points.items():
        v = values.get(name, p.default if p.default is not None else 0.0)
        out[p.field] = bool(v) if p.type == "bool" else round(v) if p.type == "int" else v
    return json.dumps(out)


class MqttDeviceServer:
    """One device's MQTT side: a client of the broker at (host, port)."""

    def __init__(
        self,
        clock: Clock,
        device: ServedDevice,
        profile: MqttProfile,
        site_id: str,
        host: str,
        port: int,
        period_s: float = 5.0,
        announce: bool = False,
        settings: MqttSettings | None = None,
    ) -> None:
        self.clock = clock
        # Credentials and TLS files (the site file's broker): host and port are the above.
        self.settings = replace(settings or MqttSettings(host), host=host, port=port)
        self._tls = tls_context(self.settings)
        self.device = device
        self.profile = profile
        self.host, self.port = host, port
        self.period_s = period_s
        self.announce = announce
        fill = {"site": site_id, "device": device.id}
        self.telemetry_topic = profile.topics.telemetry.format(**fill)
        self.command_topic = profile.topics.command.format(**fill)
        self.state_topic = profile.topics.state.format(**fill)
        self.ack_topic = self.command_topic + "/ack"
        self.client_id = f"sim-{site_id}-{device.id}"
        self._task: asyncio.Task[None] | None = None
        self._client: aiomqtt.Client | None = None
        self._crashed = False
        self.connected = asyncio.Event()
        self.served_once = False
        self.reconnect_s = 1.0
        self._node = 0  # which node of a clustered broker (MqttSettings.failover)

    @property
    def running(self) -> bool:
        """True while the device is (trying to be) connected."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Connect and serve; returns once subscribed to the command topic."""
        if self.running:
            return
        self.connected.clear()
        self._task = asyncio.create_task(self._run(), name=f"sim-mqtt-{self.device.id}")
        waiter = asyncio.ensure_future(self.connected.wait())
        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task.done():
            task, self._task = self._task, None
            try:
                task.result()
            except aiomqtt.MqttError as e:
                raise ConnectionError(
                    f"devices.{self.device.id}: cannot reach the MQTT broker at "
                    f"{self.host}:{self.port}: {e}"
                ) from e

    async def stop(self) -> None:
        """Disconnect (the broker publishes the Will: offline)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task

    async def set_offline(self, offline: bool) -> None:
        """Disconnect or reconnect."""
        if offline and self.announce and self.connected.is_set():
            self.clock.expect(self.state_topic)  # the receiver runs in this process
        await (self.stop() if offline else self.start())

    async def say_online(self, online: bool) -> None:
        """Publish the availability (retained) and stay connected: a device taken out of
        service, or back in service."""
        client = self._client
        if client is None:
            raise ConnectionError(f"devices.{self.device.id}: not connected to the broker")
        payload = json.dumps({"online": online})
        await cancellable(client.publish(self.state_topic, payload, qos=1, retain=True))

    async def crash(self) -> None:
        """Lose the connection without a DISCONNECT (a crash, a cut cable): the broker then
        publishes the Will (offline). The device stays down until `start()`."""
        client = self._client
        if client is not None:
            self._crashed = True
            sock = client._client.socket()  # paho's socket: aiomqtt has no abort
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        await self.stop()
        self._crashed = False

    async def _run(self) -> None:
        """Serve; after a first successful connection, reconnect when the broker drops us."""
        while True:
            try:
                await self._serve()
                return
            except (aiomqtt.MqttError, ExceptionGroup) as e:
                # _serve's task group wraps the error: a dropped broker ends both its loops.
                lost = e if isinstance(e, aiomqtt.MqttError) else _mqtt_error(e)
                if lost is None or not self.served_once:
                    raise
                log.warning("device %s lost the broker (%s); reconnecting", self.device.id, lost)
                self._node += 1  # a clustered broker: the next node
            await self.clock.sleep(self.reconnect_s)

    async def _serve(self) -> None:
        will = aiomqtt.Will(self.state_topic, json.dumps({"online": False}), qos=1, retain=True)
        settings = self.settings.node(self._node)
        client = mqtt_client(settings, identifier=self.client_id, context=self._tls, will=will)
        async with contextlib.AsyncExitStack() as stack:
            # The broker is another process: hold virtual time until we are subscribed.
            # `cancellable`: aiomqtt's waits can swallow the cancellation of `stop()`.
            async with self.clock.hold():
                await cancellable(stack.enter_async_context(client))
                await cancellable(subscribe(client, self.command_topic, qos=1))
                online = json.dumps({"online": True})
                await cancellable(client.publish(self.state_topic, online, qos=1, retain=True))
            self._client = client
            self.connected.set()
            self.served_once = True
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._publish_loop(client))
                    tg.create_task(self._command_loop(client))
            except asyncio.CancelledError:
                # Told to go offline: a clean disconnect sends no Will, so say it ourselves.
                offline = json.dumps({"online": False})
                if not self._crashed:
                    with contextlib.suppress(Exception):
                        await client.publish(self.state_topic, offline, qos=1, retain=True)
                raise
            finally:
                self._client = None
                self.connected.clear()
                # Commands on their way to us are lost with the connection.
                self.clock.release([self.command_topic])

    async def publish_telemetry(self, client: aiomqtt.Client) -> None:
        """Publish the device's values now."""
        payload = telemetry_payload(
            self.profile, self.device.values(), self.clock.now().isoformat()
        )
        if self.announce:
            self.clock.expect(self.telemetry_topic)
        await cancellable(client.publish(self.telemetry_topic, payload, qos=0))

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        next_s = self.clock.monotonic()
        while True:
            await self.publish_telemetry(client)
            next_s += self.period_s
            await self.clock.sleep_until(next_s)

    async def _command_loop(self, client: aiomqtt.Client) -> None:
        async for msg in client.messages:
            if not msg.topic.matches(self.command_topic):
                continue
            self.clock.arrived(self.command_topic)
            await self._handle(client, bytes(msg.payload))

    async def _handle(self, client: aiomqtt.Client, payload: bytes) -> None:
        faults = self.device.faults
        cmd_id: Any = None
        try:
            cmd_id, values = parse_command(self.profile, payload)
            if faults.delay_s > 0:
                await self.clock.sleep(faults.delay_s)
            code = faults.exception_code or faults.write_exception_code
            if code is not None:
                raise CommandError(f"device failure (fault code {code})")
            self.device.command(values)
        except CommandError as e:
            log.warning("device %s refused a command: %s", self.device.id, e)
            ack: dict[str, Any] = {"cmd_id": cmd_id, "ok": False, "error": str(e)}
        else:
            ack = {"cmd_id": cmd_id, "ok": True}
        ack["ts"] = self.clock.now().isoformat()
        if self.announce:
            self.clock.expect(self.ack_topic)
        await cancellable(client.publish(self.ack_topic, json.dumps(ack), qos=1))
        await self.publish_telemetry(client)
