"""Battery physics: SoC from charge and discharge power through separate efficiencies."""

from __future__ import annotations

from datetime import datetime

from building.params import BatteryParams
from devices.profile import Kind
from simulators.model import DeviceModel, clamp
from simulators.models import ModelSpec, register

# SunSpec ChaSt values served in the `state` point.
STATE_DISCHARGING, STATE_CHARGING, STATE_FULL, STATE_HOLDING = 3, 4, 5, 6


class BatterySim(DeviceModel):
    """A battery following its power setpoint within power and SoC limits.

    Power (kW, + charging): the setpoint when `control_mode` is 1 (remote), else 0 (idle),
    clamped to [-max_discharge_kw, max_charge_kw] and cut so that the stored energy E stays
    in [max(soc_min, soc_reserve), soc_max] % of capacity. Energy (kWh):
    E += η_c·P·Δt when charging, E -= |P|·Δt/η_d when discharging (Δt in h).
    `charged_kwh`/`discharged_kwh` count grid-side energy in and out.
    """

    kind = Kind.battery
    setpoint_points = frozenset({"power_setpoint_kw", "control_mode"})

    def __init__(self, params: BatteryParams) -> None:
        super().__init__(params.default_watchdog_s)
        self.p = params
        self.energy_kwh = params.capacity_kwh * params.initial_soc_pct / 100
        self.control_mode = 0
        self.setpoint_kw = 0.0
        self.soc_reserve_pct = params.soc_reserve_pct
        self.charged_kwh = 0.0
        self.discharged_kwh = 0.0

    @property
    def soc_pct(self) -> float:
        """State of charge, % of capacity."""
        return 100 * self.energy_kwh / self.p.capacity_kwh

    def step(self, dt_s: float, now: datetime) -> None:
        p, dt_h = self.p, dt_s / 3600
        target = self.setpoint_kw if self.control_mode == 1 else 0.0
        power = clamp(target, -p.max_discharge_kw, p.max_charge_kw)
        e_hi = p.capacity_kwh * p.soc_max_pct / 100
        e_lo = p.capacity_kwh * max(p.soc_min_pct, self.soc_reserve_pct) / 100
        if power > 0:
            power = min(power, max(0.0, e_hi - self.energy_kwh) / (p.charge_efficiency * dt_h))
            self.energy_kwh += p.charge_efficiency * power * dt_h
            self.charged_kwh += power * dt_h
        elif power < 0:
            room = max(0.0, self.energy_kwh - e_lo) * p.discharge_efficiency / dt_h
            power = max(power, -room)
            self.energy_kwh += power * dt_h / p.discharge_efficiency
            self.discharged_kwh -= power * dt_h
        self.power_kw = power

    def fallback(self) -> None:
        self.control_mode = 0
        self.setpoint_kw = 0.0

    def _state(self) -> int:
        if self.power_kw > 1e-9:
            return STATE_CHARGING
        if self.power_kw < -1e-9:
            return STATE_DISCHARGING
        if self.soc_pct >= self.p.soc_max_pct - 1e-9:
            return STATE_FULL
        return STATE_HOLDING

    def _read(self) -> dict[str, float]:
        return {
            "capacity_kwh": self.p.capacity_kwh,
            "max_charge_kw": self.p.max_charge_kw,
            "max_discharge_kw": self.p.max_discharge_kw,
            "soc_pct": self.soc_pct,
            "power_kw": self.power_kw,
            "state": self._state(),
            "control_mode": self.control_mode,
            "power_setpoint_kw": self.setpoint_kw,
            "soc_reserve_pct": self.soc_reserve_pct,
        }

    def _apply(self, point: str, value: float) -> bool:
        if point == "power_setpoint_kw":
            self.setpoint_kw = value
        elif point == "control_mode":
            self.control_mode = int(value)
        elif point == "soc_reserve_pct":
            self.soc_reserve_pct = value
        else:
            return False
        return True


register(ModelSpec(Kind.battery, BatteryParams, lambda p, ctx: BatterySim(p)))
