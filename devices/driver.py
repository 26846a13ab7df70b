"""The driver contract: what every device driver offers the agent, and the shared setpoint clamp.

A driver talks to one device. `read()` returns canonical point values (units in the names,
consumption positive) or raises `DeviceError`; `write()` clamps a setpoint to the profile's
range and the site's limits before anything is sent.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

import structlog

from devices.health import Health
from devices.profile import EnumError, Kind, ModbusProfile, MqttProfile

log = structlog.get_logger("devices")

PointLimits = Mapping[str, tuple[float, float]]
"""Per-device limits from the site file: canonical point name → (min, max) in its unit."""


class DeviceError(Exception):
    """A device did not give a usable answer.

    `reason` is one short phrase for logs and health ("timeout after 1 s", "connection
    refused", "exception code 2 reading holding 40000+11"); `exception_code` is the Modbus
    exception code when the device answered with one; `connection_lost` says the transport
    is down (the device counts as offline at once, not after repeated failures).
    """

    def __init__(
        self, reason: str, *, exception_code: int | None = None, connection_lost: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exception_code = exception_code
        self.connection_lost = connection_lost


@dataclass(frozen=True)
class Reading:
    """One poll of one device: canonical point name → engineering value (unit in the name).

    `ts` is the clock's UTC time of the answer, `monotonic_s` the clock's monotonic time.
    Booleans read as 0.0 / 1.0.
    """

    device_id: str
    ts: datetime
    monotonic_s: float
    values: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class WriteResult:
    """What a setpoint write did: `requested` by the caller, `written` after clamping.

    `verified` is True/False when the point was read back (profile `verify: true`), None when
    the profile asks for no read-back (or the transport cannot read back).
    """

    point: str
    requested: float
    written: float
    clamped: bool
    verified: bool | None


@runtime_checkable
class Driver(Protocol):
    """One device, polled by the agent. Implementations must never raise anything but
    `DeviceError` from `read()`/`write()` for device trouble (bugs may still raise)."""

    @property
    def id(self) -> str:
        """Device id from the site file."""
        ...

    @property
    def kind(self) -> Kind:
        """Device kind (capabilities it offers)."""
        ...

    @property
    def profile(self) -> ModbusProfile | MqttProfile | None:
        """The profile it runs, or None for a driver that needs none."""
        ...

    @property
    def health(self) -> Health:
        """The driver's own view of its transport (the Poller keeps the authoritative one)."""
        ...

    async def start(self) -> None:
        """Open the transport; must not raise when the device is down (read() will)."""
        ...

    async def close(self) -> None:
        """Release the transport; idempotent."""
        ...

    async def read(self) -> Reading:
        """Read every point; raise DeviceError on timeout, refusal or a bad answer."""
        ...

    async def write(self, point: str, value: float) -> WriteResult:
        """Clamp `value` to the point's and the site's limits, write it, read back if asked."""
        ...


@runtime_checkable
class SelfReporting(Protocol):
    """A driver whose device tells its own state between polls (an MQTT device's
    availability, its telemetry going stale): the Poller reads it again as soon as
    `changed` is set or the clock reaches `next_check_s()`, not only on its period."""

    @property
    def changed(self) -> asyncio.Event:
        """Set when the device said something (the Poller clears it, reads, and asks
        `next_check_s()` again)."""
        ...

    def next_check_s(self) -> float | None:
        """Clock monotonic time at which `read()` would answer differently by itself (its
        telemetry turns stale), or None when nothing is due."""
        ...


class PointError(ValueError):
    """A write to a point that does not exist or is not writable; names device and point."""


def clamp_setpoint(
    device_id: str,
    point: str,
    value: float,
    profile_range: tuple[float | None, float | None],
    limits: PointLimits,
) -> tuple[float, bool]:
    """Clamp `value` into the profile's [min, max] and the site's limits for `point`.

    Returns (value to write, clamped?). A clamp is logged once, with both bounds. A value
    that is not a finite number is refused with PointError (it is never sent).
    """
    if not math.isfinite(value):
        raise PointError(f"{device_id}.{point}: {value} is not a finite number")
    lo, hi = profile_range
    site = limits.get(point)
    if site is not None:
        lo = site[0] if lo is None else max(lo, site[0])
        hi = site[1] if hi is None else min(hi, site[1])
    written = value
    if lo is not None and written < lo:
        written = float(lo)
    if hi is not None and written > hi:
        written = float(hi)
    clamped = written != value
    if clamped:
        log.warning(
            "setpoint_clamped",
            device_id=device_id,
            point=point,
            requested=value,
            written=written,
            min=lo,
            max=hi,
        )
    return written, clamped


def _enum_profile(driver: Driver) -> ModbusProfile | MqttProfile:
    if driver.profile is None:
        raise PointError(f"{driver.id}: runs no profile, so its points have no named values")
    return driver.profile


async def write_enum(driver: Driver, point: str, name: str) -> WriteResult:
    """Write `point` by the name of one of its profile `values` (`"remote"` → 1).

    PointError (nothing sent) when the driver runs no profile or the point has no such name.
    """
    try:
        raw = _enum_profile(driver).enum_value(point, name)
    except EnumError as e:
        raise PointError(f"{driver.id}: {e}") from e
    return await driver.write(point, raw)


def enum_name(driver: Driver, reading: Reading, point: str) -> str:
    """The profile name of `point`'s value in `reading` (1 → `"remote"`); PointError when the
    reading lacks the point or its value has no name."""
    profile = _enum_profile(driver)
    if point not in reading.values:
        raise PointError(f"{driver.id}: reading has no point {point}")
    try:
        return profile.enum_name(point, reading.values[point])
    except EnumError as e:
        raise PointError(f"{driver.id}: {e}") from e
