"""The MQTT driver: runs any MqttProfile. Telemetry arrives by subscription (JSON object of
the profile's fields); commands are published as JSON on the command topic after clamping.

`read()` returns the latest telemetry, or raises DeviceError so the Poller degrades the
device (a malformed last message, telemetry older than a few telemetry periods) or takes
it offline at once (the device's availability topic says offline, its last will included;
no telemetry since it came online). Only a message that carries at least one of the
profile's fields is telemetry: `{}` or vendor-only fields refresh nothing.

The telemetry period is the site's option, else the profile's `telemetry_period_s`, else
learnt from the messages (the longest of the last intervals: extra messages after commands
only shorten intervals); until then `stale_after_s` applies. The driver is `SelfReporting`:
the Poller reads it again when the device says something (telemetry, availability) or its
telemetry turns stale.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import deque

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

STALE_PERIODS = 3
"""Telemetry periods without a message before the device is stale."""
LEARN_INTERVALS = 4
"""Intervals between messages seen before a learnt telemetry period is trusted."""


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
        telemetry_period_s: float | None = None,
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
        self._period_s = telemetry_period_s or profile.telemetry_period_s
        self._intervals: deque[float] = deque(maxlen=16)
        self._limits: PointLimits = dict(limits or {})
        self.telemetry_topic = profile.topics.telemetry.format(site=site, device=device_id)
        self.command_topic = profile.topics.command.format(site=site, device=device_id)
        self.state_topic = profile.topics.state.format(site=site, device=device_id)
        self._available: bool | None = None  # None until the device says
        self._state_error = ""
        self._empty_logged = False
        self.changed = asyncio.Event()
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
            await self._hub.subscribe(self.state_topic, self._on_state)
            await self._hub.subscribe(self.telemetry_topic, self._on_telemetry)
            await self._hub.subscribe(self.command_topic + "/ack", self._on_ack)

    def _on_state(self, payload: bytes) -> None:
        """The device's availability (retained; its last will says offline)."""
        field = self._profile.availability_field
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            doc = None
        online = doc.get(field) if isinstance(doc, dict) else None
        if not isinstance(online, bool):
            error = f"{self.state_topic}: expected a JSON object with boolean {field}"
            if error != self._state_error:  # once, not on every message
                self._state_error = error
                log.warning("availability_invalid", device_id=self._id, error=error)
            return
        self._state_error = ""
        was, self._available = self._available, online
        if online is was:
            return
        if not online:
            # Telemetry from before it went down must not count once it is back.
            self._received_at = None
            self._intervals.clear()
            log.warning("device_unavailable", device_id=self._id, topic=self.state_topic)
            self.changed.set()
        elif was is False:
            log.info("device_available", device_id=self._id)

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
            self.changed.set()
            return
        if not isinstance(doc, dict):
            self._bad = "telemetry is not a JSON object"
            self.changed.set()
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
                self.changed.set()
                return
        if not values:
            if not self._empty_logged:  # once until the next real telemetry
                self._empty_logged = True
                log.warning(
                    "telemetry_without_fields", device_id=self._id, topic=self.telemetry_topic
                )
            return  # no profile field: not telemetry, refreshes nothing
        self._empty_logged = False
        now = self._clock.monotonic()
        gap = None if self._received_at is None else now - self._received_at
        # A longer gap was an outage; a zero gap (two messages at one instant, e.g. an answer
        # to a command beside the periodic one) says nothing of the period.
        if gap is not None and 0 < gap < 2 * self._stale_after():
            self._intervals.append(gap)
        self._values.update(values)
        self._bad = None
        self._received_at = now
        self._received_ts = self._clock.now()
        self.changed.set()  # the Poller moves its stale deadline now, not by waking for it

    def _stale_after(self) -> float:
        """Seconds without telemetry before the device is stale."""
        period = self._period_s
        if period is None and len(self._intervals) >= LEARN_INTERVALS:
            period = max(self._intervals)
        if period is None or period <= 0:  # never a zero bound: staleness divides by it
            return self._stale_after_s
        return STALE_PERIODS * period

    def next_check_s(self) -> float | None:
        """When the last telemetry turns stale, then when it counts as gone (twice as old):
        the Poller reads then, without waiting for the device's poll period."""
        if self._received_at is None:
            return None
        bound = self._stale_after()
        age = self._clock.monotonic() - self._received_at
        # The epsilon keeps the instant itself from being due again (float rounding).
        k = math.floor(age / bound + 1e-9) + 1
        return self._received_at + k * bound if k <= 2 else None

    async def read(self) -> Reading:
        """The latest telemetry; DeviceError when none yet, stale, or malformed."""
        try:
            if self._available is False:
                raise DeviceError(
                    f"the device says it is offline ({self.state_topic})", connection_lost=True
                )
            if self._bad is not None:
                raise DeviceError(self._bad)
            if self._received_at is None:
                since = "since it came online" if self._available else "yet"
                raise DeviceError(
                    f"no telemetry on {self.telemetry_topic} {since}", connection_lost=True
                )
            age = self._clock.monotonic() - self._received_at
            bound = self._stale_after()
            if age >= 2 * bound - 1e-9:  # silent twice as long: gone, not just late
                raise DeviceError(f"no telemetry for {age:.0f} s", connection_lost=True)
            if age >= bound - 1e-9:
                raise DeviceError(f"telemetry stale for {age:.0f} s (stale after {bound:g} s)")
        except DeviceError as e:
            state = HealthState.offline if e.connection_lost else HealthState.degraded
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
