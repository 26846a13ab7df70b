"""EV charger physics: vehicle sessions charged at min(limit, vehicle max) until full."""

from __future__ import annotations

from datetime import datetime

from building.params import EvChargerParams
from devices.profile import Kind
from simulators.model import DeviceModel
from simulators.models import ModelSpec, register

# IEC 61851-flavoured status served in `state`.
STATE_NO_CAR, STATE_CONNECTED, STATE_CHARGING = 0, 1, 2
DAY_S = 86400.0


class EvChargerSim(DeviceModel):
    """A charger with scheduled vehicle sessions (times relative to `start`).

    While a vehicle is plugged and `enabled`, it draws P = min(power_limit_kw, vehicle_max_kw,
    max_power_kw) kW (0 if below `min_power_kw`), never more energy than the vehicle still
    needs; `session_energy_kwh` counts what the current (or last) vehicle received (with
    `session_counter: cumulative`, what every vehicle received). Power
    is averaged over each step, so arrivals and departures inside a step are exact. With
    `repeat_daily` every session comes back each day, 24 h later.
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
        # The current (or last) visit: (session index, day); energy delivered per visit.
        self.session: tuple[int, int] | None = None
        self.session_energy_kwh = 0.0
        self.delivered: dict[tuple[int, int], float] = {}
        self.plugged = self._plugged(0.0)

    @property
    def delivered_kwh(self) -> list[float]:
        """Energy each session received on the first day (kWh)."""
        return [self.delivered.get((i, 0), 0.0) for i in range(len(self.windows))]

    def _visits(self, t0: float, t1: float) -> list[tuple[int, int, float, float, float, float]]:
        """(session, day, arrival, departure, need, vehicle max) of visits near [t0, t1]."""
        days = [0]
        if self.p.repeat_daily:
            d = int(t0 // DAY_S)
            days = [k for k in (d - 1, d, d + 1) if k >= 0]
        return [
            (i, k, arr + k * DAY_S, dep + k * DAY_S, need, vmax)
            for k in days
            for i, (arr, dep, need, vmax) in enumerate(self.windows)
        ]

    def _plugged(self, t: float) -> bool:
        return any(arr <= t < dep for _, _, arr, dep, _, _ in self._visits(t, t))

    def step(self, dt_s: float, now: datetime) -> None:
        t0 = (now - self.start).total_seconds()
        t1 = t0 + dt_s
        energy = 0.0
        for i, day, arr, dep, need, vmax in self._visits(t0, t1):
            active_s = min(t1, dep) - max(t0, arr)
            if active_s <= 0:
                continue
            visit = (i, day)
            if self.session != visit:
                self.session = visit
                if self.p.session_counter == "per_session":
                    self.session_energy_kwh = 0.0
                # Keep only the visits still in progress, so a long replay stays small.
                self.delivered = {k: v for k, v in self.delivered.items() if k[1] >= day - 1}
            power = min(self.limit_kw, vmax, self.p.max_power_kw) if self.enabled else 0.0
            if power < self.p.min_power_kw:
                power = 0.0
            got = self.delivered.get(visit, 0.0)
            e = min(power * active_s / 3600, max(0.0, need - got))
            self.delivered[visit] = got + e
            self.session_energy_kwh += e
            energy += e
        self.power_kw = energy * 3600 / dt_s if dt_s > 0 else 0.0
        self.plugged = self._plugged(t1)

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


register(ModelSpec(Kind.ev_charger, EvChargerParams, lambda p, ctx: EvChargerSim(p, ctx.start)))
