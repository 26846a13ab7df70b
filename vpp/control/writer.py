"""Writes the cycle's commands: only what changed, plus re-assertion before each device's
watchdog runs out; every write (and every failure) is stored.

Devices are written concurrently; one device's commands are written in order (the battery's
control mode before its setpoint). A device that fails a write never stops the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import structlog

from devices.clock import Clock
from devices.driver import DeviceError, Driver, PointError, WriteResult
from vpp.control.types import Command
from vpp.store.store import Store

log = structlog.get_logger(__name__)

DEFAULT_WATCHDOG_S = 60.0


class CommandWriter:
    """Remembers what each device was last told and when."""

    def __init__(
        self,
        drivers: Mapping[str, Driver],
        clock: Clock,
        store: Store,
        *,
        watchdog_s: Callable[[str], float] | None = None,
        tolerance: float = 1e-6,
    ) -> None:
        self._drivers = drivers
        self._clock = clock
        self._store = store
        self._watchdog_s = watchdog_s or (lambda _id: DEFAULT_WATCHDOG_S)
        self._tolerance = tolerance
        self._last: dict[tuple[str, str], tuple[float, float]] = {}  # value, monotonic
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
        return (
            abs(value - cmd.value) > self._tolerance
            or now - at >= self._watchdog_s(cmd.device_id) / 2
        )

    def due(self, commands: list[Command]) -> list[Command]:
        """The commands that must be written now (last command per device and point wins)."""
        now = self._clock.monotonic()
        latest: dict[tuple[str, str], Command] = {}
        for c in commands:
            latest[(c.device_id, c.point)] = c
        return [c for c in latest.values() if self._due(c, now)]

    def reassert(self) -> list[Command]:
        """Commands whose watchdog half-period has run out, for devices told nothing new."""
        now = self._clock.monotonic()
        out = []
        for (dev, point), (value, at) in self._last.items():
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
        for cmd in commands:
            ts = self._clock.now()
            if driver is None:
                log.error("command_for_unknown_device", device_id=device_id, point=cmd.point)
                continue
            try:
                result = await driver.write(cmd.point, cmd.value)
            except (DeviceError, PointError) as e:
                self.failures += 1
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
                break  # the rest of this device's commands depend on this one
            self.writes += 1
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
