"""Writes the cycle's commands: only what changed, plus re-assertion before each device's
watchdog runs out; every write (and every failure) is stored.

Devices are written concurrently; one device's commands are written in order (the battery's
control mode before its setpoint). A device that fails a write never stops the others. Each
write's outcome goes to the devices' health (`WriteHealth`, the poller): a device that refuses
its writes is left out of control like an offline one. A refused command is tried again at the
next cycle (unless a newer one for the point replaces it), so that a device that refuses every
write is found out within a few cycles, not at its next change of setpoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Protocol

import structlog

from devices.clock import Clock
from devices.driver import DeviceError, Driver, PointError, WriteResult
from vpp.control.types import Command
from vpp.store.store import Store

log = structlog.get_logger(__name__)

DEFAULT_WATCHDOG_S = 60.0


class WriteHealth(Protocol):
    """Who keeps the devices' health, told how each write went (devices.poller.Poller)."""

    def write_failed(self, device_id: str, e: DeviceError) -> None: ...

    def write_succeeded(self, device_id: str) -> None: ...


def point_tolerance(point: str) -> float:
    """Smallest change worth a write: 0.5 kW for power points, 0.1 degC for temperatures;
    anything else (modes, switches) on any change. Saves the bus from chasing noise."""
    if point.endswith("_kw"):
        return 0.5
    if point.endswith("_c"):
        return 0.1 - 1e-9
    return 1e-9


class CommandWriter:
    """Remembers what each device was last told and when."""

    def __init__(
        self,
        drivers: Mapping[str, Driver],
        clock: Clock,
        store: Store,
        *,
        watchdog_s: Callable[[str], float] | None = None,
        tolerance: Callable[[str], float] | None = None,
        health: WriteHealth | None = None,
    ) -> None:
        self._drivers = drivers
        self._health = health
        self._clock = clock
        self._store = store
        self._watchdog_s = watchdog_s or (lambda _id: DEFAULT_WATCHDOG_S)
        self._tolerance = tolerance or point_tolerance
        self._last: dict[tuple[str, str], tuple[float, float]] = {}  # value, monotonic
        self._refused: dict[tuple[str, str], Command] = {}  # to try again next cycle
        self.writes = 0
        self.failures = 0

    def last_value(self, device_id: str, point: str) -> float | None:
        entry = self._last.get((device_id, point))
        return entry[0] if entry else None

    def _due(self, cmd: Command, now: float) -> bool:
        entry = self._last.get((cmd.device_id, cmd.point))
        if entry is None:
            return True
        value, at = entry
        # Re-assert at half the watchdog so one lost write does not let the device revert.
        changed = abs(value - cmd.value) > self._tolerance(cmd.point)
        return changed or now - at >= self._watchdog_s(cmd.device_id) / 2

    def due(self, commands: list[Command]) -> list[Command]:
        """The commands that must be written now (last command per device and point wins,
        except that a watchdog re-assertion never replaces a new command)."""
        now = self._clock.monotonic()
        latest: dict[tuple[str, str], Command] = {}
        for c in commands:
            key = (c.device_id, c.point)
            if c.reason == "watchdog" and key in latest:
                continue
            latest[key] = c
        # A refused command is due again as it is (its point may still hold an older value).
        return [c for k, c in latest.items() if self._refused.get(k) is c or self._due(c, now)]

    def reassert(self, skip: Callable[[str], bool] | None = None) -> list[Command]:
        """Commands refused last time, then those whose watchdog half-period has run out, for
        devices told nothing new; none for devices `skip` names (offline ones: they get theirs
        once back)."""
        now = self._clock.monotonic()
        out = [c for (dev, _), c in self._refused.items() if skip is None or not skip(dev)]
        for (dev, point), (value, at) in self._last.items():
            if skip is not None and skip(dev):
                continue
            if now - at >= self._watchdog_s(dev) / 2:
                out.append(Command(dev, point, value, "watchdog"))
        return out

    async def write(self, commands: list[Command]) -> list[WriteResult]:
        """Write what is due; returns the successful results."""
        todo = self.due(commands)
        by_device: dict[str, list[Command]] = {}
        for c in todo:
            by_device.setdefault(c.device_id, []).append(c)
        results = await asyncio.gather(*(self._write_device(d, cs) for d, cs in by_device.items()))
        return [r for rs in results for r in rs]

    async def _write_device(self, device_id: str, commands: list[Command]) -> list[WriteResult]:
        driver = self._drivers.get(device_id)
        out: list[WriteResult] = []
        for i, cmd in enumerate(commands):
            ts = self._clock.now()
            if driver is None:
                log.error("command_for_unknown_device", device_id=device_id, point=cmd.point)
                continue
            try:
                result = await driver.write(cmd.point, cmd.value)
            except (DeviceError, PointError) as e:
                self.failures += 1
                if isinstance(e, DeviceError) and self._health is not None:
                    self._health.write_failed(device_id, e)  # a PointError is ours, not its
                reason = getattr(e, "reason", str(e))
                self._store.add_command(
                    ts,
                    device_id,
                    cmd.point,
                    cmd.value,
                    None,
                    clamped=False,
                    ok=False,
                    error=reason,
                    reason=cmd.reason,
                )
                log.warning("command_failed", device_id=device_id, point=cmd.point, error=reason)
                if isinstance(e, DeviceError) and not e.connection_lost:
                    # Refused, not unreachable (that one gets new commands once back).
                    for c in commands[i:]:  # this one and those that depend on it
                        self._refused[(device_id, c.point)] = c
                break  # the rest of this device's commands depend on this one
            self.writes += 1
            self._refused.pop((device_id, cmd.point), None)
            if self._health is not None:
                self._health.write_succeeded(device_id)
            self._last[(device_id, cmd.point)] = (cmd.value, self._clock.monotonic())
            self._store.add_command(
                ts,
                device_id,
                cmd.point,
                cmd.value,
                result.written,
                clamped=result.clamped,
                ok=result.verified is not False,
                error=None if result.verified is not False else "read-back differs",
                reason=cmd.reason,
            )
            out.append(result)
        return out
