"""EV charger physics: vehicle sessions charged at min(limit, vehicle max) until full."""

from __future__ import annotations

from datetime import datetime

from devices.profile import Kind
from simulators.model import DeviceModel
from simulators.params import EvChargerParams

# IEC 61851-flavoured status served in `state`.
STATE_NO_CAR, STATE_CONNECTED, STATE_CHARGING = 0, 1, 2


class EvChargerSim(DeviceModel):
    """A charger with scheduled vehicle sessions (times relative to `start`).

    While a vehicle is plugged and `enabled`, it draws P = min(power_limit_kw, vehicle_max_kw,
    max_power_kw) kW (0 if below `min_power_kw`), never more energy than the vehicle still
    needs; `session_energy_kwh` counts what the current (or last) vehicle received. Power
    is averaged over each step, so arrivals and departures inside a step are exact.
    """

    kind = Kind.ev_charger
    setpoint_points = frozenset({"power_limit_kw", "enabled"})

    def __init__(self, params: EvChargerParams, start: datetime) -> None:
        super().__init__(params.default_watchdog_s)
        self.p = params
        self.start = start
        self.windows = sorted(
            ((*s.window(start), s.energy_needed_kwh, s.vehicle_max_kw) for s in params.sessions),
            key=lambda w: w[0],
        )
        self.limit_kw = params.default_limit_kw
        self.enabled = True
        self.session: int | None = None  # index in windows of the current or last session
        self.session_energy_kwh = 0.0
        self.delivered_kwh: list[float] = [0.0] * len(self.windows)
        self.plugged = False
        self._t = 0.0

    def step(self, dt_s: float, now: datetime) -> None:
        t0 = (now - self.start).total_seconds()
        t1 = t0 + dt_s
        energy = 0.0
        for i, (arr, dep, need, vmax) in enumerate(self.windows):
            active_s = min(t1, dep) - max(t0, arr)
            if active_s <= 0:
                continue
            if self.session != i:
                self.session, self.session_energy_kwh = i, 0.0
            power = min(self.limit_kw, vmax, self.p.max_power_kw) if self.enabled else 0.0
            if power < self.p.min_power_kw:
                power = 0.0
            e = min(power * active_s / 3600, max(0.0, need - self.delivered_kwh[i]))
            self.delivered_kwh[i] += e
            self.session_energy_kwh = self.delivered_kwh[i]
            energy += e
        self.power_kw = energy * 3600 / dt_s if dt_s > 0 else 0.0
        self._t = t1
        self.plugged = any(arr <= t1 < dep for arr, dep, _, _ in self.windows)

    def fallback(self) -> None:
        self.limit_kw = self.p.default_limit_kw
        self.enabled = True

    def _state(self) -> int:
        if not self.plugged:
            return STATE_NO_CAR
        return STATE_CHARGING if self.power_kw > 1e-9 else STATE_CONNECTED

    def _read(self) -> dict[str, float]:
        return {
            "state": self._state(),
            "plugged": float(self.plugged),
            "enabled": float(self.enabled),
            "phases": self.p.phases,
            "power_kw": self.power_kw,
            "session_energy_kwh": self.session_energy_kwh,
            "max_power_kw": self.p.max_power_kw,
            "power_limit_kw": self.limit_kw,
        }

    def _apply(self, point: str, value: float) -> bool:
        if point == "power_limit_kw":
            self.limit_kw = min(value, self.p.max_power_kw)
        elif point == "enabled":
            self.enabled = bool(value)
        else:
            return False
        return True
