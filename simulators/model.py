"""Base of every simulated device: canonical point values, writes, and the fail-safe
watchdog that returns the device to its own default behaviour when commands stop."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from devices.profile import Kind


class DeviceModel(ABC):
    """Physics of one device on the injected clock.

    `step(dt_s, now)` advances the state over [now, now + dt_s] (inputs taken at `now`);
    `read()` gives canonical point values (names as in the profiles; power consumption
    positive, kW); `write(point, value, now_s)` applies a command (`now_s` on the clock's
    monotonic scale, for the watchdog). Points a model does not know are kept and read back
    unchanged (`extra`).
    """

    kind: Kind
    # Writes to these points count as a controller's command (they arm the watchdog).
    setpoint_points: frozenset[str] = frozenset()

    def __init__(self, watchdog_s: float | None) -> None:
        self.watchdog_s = watchdog_s
        self.remote = False
        self.last_command_s: float | None = None
        self.fallbacks = 0
        self.power_kw = 0.0
        self.extra: dict[str, float] = {}

    def write(self, point: str, value: float, now_s: float) -> None:
        """Apply a command; the caller has checked the point's range."""
        if point == "watchdog_s":
            self.watchdog_s = float(value)
            return
        if point in self.setpoint_points:
            self.remote = True
            self.last_command_s = now_s
        if not self._apply(point, float(value)):
            self.extra[point] = float(value)

    def check_watchdog(self, now_s: float) -> bool:
        """Fall back to the default behaviour if the last command is `watchdog_s` old or
        older; return True when it did so now."""
        if not self.remote or self.watchdog_s is None or self.last_command_s is None:
            return False
        if now_s - self.last_command_s < self.watchdog_s:
            return False
        self.remote = False
        self.fallbacks += 1
        self.fallback()
        return True

    def read(self) -> dict[str, float]:
        """Canonical point values (engineering units)."""
        out = dict(self.extra)
        out.update(self._read())
        if self.watchdog_s is not None:
            out["watchdog_s"] = self.watchdog_s
        return out

    @abstractmethod
    def step(self, dt_s: float, now: datetime) -> None:
        """Advance the physics by `dt_s` seconds from `now`."""

    @abstractmethod
    def fallback(self) -> None:
        """Return to the device's own default behaviour (watchdog expiry)."""

    @abstractmethod
    def _read(self) -> dict[str, float]: ...

    @abstractmethod
    def _apply(self, point: str, value: float) -> bool:
        """Apply a write to a known point; False if the model does not know the point."""


def clamp(x: float, lo: float, hi: float) -> float:
    """x limited to [lo, hi]."""
    return lo if x < lo else hi if x > hi else x
