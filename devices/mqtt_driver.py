"""The MQTT driver: runs any MqttProfile. Telemetry arrives by subscription (JSON object of
the profile's fields); commands are published as JSON on the command topic after clamping.

`read()` returns the latest telemetry; telemetry older than `stale_after_s` (clock seconds)
or a malformed last message is a DeviceError, so the Poller degrades the device.
"""

from __future__ import annotations

import json
import math

import structlog

from devices.clock import Clock
from devices.driver import (
    DeviceError,
    PointError,
    PointLimits,
    Reading,
    WriteResult,
    clamp_setpoint,
)
from devices.health import Health, HealthState
from devices.mqtt_hub import MqttHub
from devices.profile import Kind, MqttPoint, MqttProfile

log = structlog.get_logger("devices.mqtt")


class MqttDriver:
    """One MQTT device `device_id` of site `site`, sharing `hub`'s broker connection.

    `hold_commands` (replay with the simulators in this process): each command calls
    `clock.expect(command_topic)` first, so virtual time stands still until the simulated
    device has it (the simulator calls `clock.arrived(command_topic)`).
    """

    def __init__(
        self,
        device_id: str,
        profile: MqttProfile,
        *,
        hub: MqttHub,
        clock: Clock,
        site: str = "site",
        stale_after_s: float = 10.0,
        limits: PointLimits | None = None,
        hold_commands: bool = False,
    ) -> None:
        for name, (lo, hi) in (limits or {}).items():
            if name not in profile.points:
                raise PointError(f"{device_id}: limits.{name}: the profile has no such point")
            if lo > hi:
                raise PointError(f"{device_id}: limits.{name}: min {lo} is above max {hi}")
        self._id = device_id
        self._profile = profile
        self._hub = hub
        self._clock = clock
        self._stale_after_s = stale_after_s
        self._limits: PointLimits = dict(limits or {})
        self.telemetry_topic = profile.topics.telemetry.format(site=site, device=device_id)
        self.command_topic = profile.topics.command.format(site=site, device=device_id)
        self._by_field = {p.field: name for name, p in profile.points.items()}
        self._values: dict[str, float] = {
            n: p.default for n, p in profile.points.items() if p.default is not None
        }
        self._received_at: float | None = None
        self._received_ts = clock.now()
        self._bad: str | None = None
        self._subscribed = False
        self._hold_commands = hold_commands
        self._health = Health.starting(clock.now())

    @property
    def id(self) -> str:
        return self._id

    @property
    def kind(self) -> Kind:
        return self._profile.kind

    @property
    def profile(self) -> MqttProfile:
        return self._profile

    @property
    def health(self) -> Health:
        return self._health

    async def start(self) -> None:
        """Subscribe to the telemetry topic (once, however often it is called)."""
        if not self._subscribed:
            self._subscribed = True
            await self._hub.subscribe(self.telemetry_topic, self._on_telemetry)
            await self._hub.subscribe(self.command_topic + "/ack", self._on_ack)

    def _on_ack(self, payload: bytes) -> None:
        """A device's answer to a command: a refusal is logged with the device's reason."""
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return
        if isinstance(doc, dict) and doc.get("ok") is False:
            log.warning("command_refused", device_id=self._id, error=str(doc.get("error")))

    async def close(self) -> None:
        """Nothing to release: the hub owns the connection."""

    def _on_telemetry(self, payload: bytes) -> None:
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            self._bad = f"telemetry is not JSON: {e}"
            return
        if not isinstance(doc, dict):
            self._bad = "telemetry is not a JSON object"
            return
        values: dict[str, float] = {}
        for key, v in doc.items():
            name = self._by_field.get(key)
            if name is None:
                continue  # extra fields are allowed and ignored
            if isinstance(v, bool) or (isinstance(v, int | float) and math.isfinite(v)):
                values[name] = float(v)
            else:
                self._bad = f"telemetry field {key} is not a number: {v!r}"
                return
        self._values.update(values)
        self._bad = None
        self._received_at = self._clock.monotonic()
        self._received_ts = self._clock.now()

    async def read(self) -> Reading:
        """The latest telemetry; DeviceError when none yet, stale, or malformed."""
        try:
            if self._bad is not None:
                raise DeviceError(self._bad)
            if self._received_at is None:
                raise DeviceError(f"no telemetry on {self.telemetry_topic} yet")
            age = self._clock.monotonic() - self._received_at
            if age > self._stale_after_s:
                raise DeviceError(f"telemetry stale for {age:.0f} s")
        except DeviceError as e:
            state = HealthState.offline if self._received_at is None else HealthState.degraded
            self._health = Health(state, e.reason, self._clock.now())
            raise
        if self._health.state is not HealthState.online:
            self._health = Health.online(self._clock.now())
        return Reading(self._id, self._received_ts, self._received_at, dict(self._values))

    async def write(self, point: str, value: float) -> WriteResult:
        """Clamp and publish `{field: value}` on the command topic (QoS 1); no read-back."""
        p = self._writable(point)
        if p.type == "bool":
            written, clamped = (1.0 if value else 0.0), False
            out: float | int | bool = bool(written)
        else:
            written, clamped = clamp_setpoint(
                self._id, point, float(value), (p.min, p.max), self._limits
            )
            if p.type == "int":
                written = float(round(written))
                out = int(written)
            else:
                out = written
        payload = json.dumps({p.field: out}).encode()
        if self._hold_commands:
            self._clock.expect(self.command_topic)
        try:
            await self._hub.publish(self.command_topic, payload)
        except DeviceError:
            if self._hold_commands:
                self._clock.arrived(self.command_topic)  # it will never arrive
            raise
        return WriteResult(point, float(value), written, clamped, None)

    def _writable(self, point: str) -> MqttPoint:
        p = self._profile.points.get(point)
        if p is None:
            raise PointError(f"{self._id}: the profile {self._profile.name} has no point {point}")
        if p.access != "rw":
            raise PointError(f"{self._id}.{point} is read-only")
        return p
