"""Bidirectional (V2G) charger physics: vehicle sessions that charge and discharge on a signed
setpoint, down to the vehicle's own hardware minimum (not the driver's departure SoC: keeping
that is the controller's job)."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from devices.profile import Kind
from simulators.model import DeviceModel, clamp
from simulators.models import ModelSpec, register


class V2gSessionSpec(BaseModel):
    """One visit: when (aware datetimes), the car's battery, its SoC on arrival and the least
    SoC its driver wants at departure (%)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arrival: AwareDatetime
    departure: AwareDatetime
    capacity_kwh: float = Field(default=60.0, gt=0)
    arrival_soc_pct: float = Field(default=40.0, ge=0, le=100)
    departure_soc_pct: float = Field(default=80.0, ge=0, le=100)

    @model_validator(mode="after")
    def _check(self) -> V2gSessionSpec:
        if self.departure <= self.arrival:
            raise ValueError("departure must be after arrival")
        return self


class V2gChargerParams(BaseModel):
    """A V2G charger: power limits each way (kW, AC side), one-way efficiency, the vehicles'
    hardware SoC floor (%), what it does without a controller (`default_kw`, charging), and
    its sessions (in time order, not overlapping)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_charge_kw: float = Field(default=20.0, gt=0)
    max_discharge_kw: float = Field(default=20.0, ge=0)
    efficiency: float = Field(default=0.93, gt=0, le=1)
    hardware_min_soc_pct: float = Field(default=10.0, ge=0, le=100)
    default_kw: float = Field(default=11.0, ge=0)
    default_watchdog_s: float = Field(default=60.0, gt=0)
    sessions: list[V2gSessionSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> V2gChargerParams:
        for a, b in zip(self.sessions, self.sessions[1:], strict=False):
            if b.arrival < a.departure:
                raise ValueError("sessions overlap or are out of time order")
        return self


class V2gChargerSim(DeviceModel):
    """While a car is plugged it follows the setpoint (+ charge, − discharge) within the
    charger's limits, stops charging when full and discharging at the hardware floor. SoC is
    integrated over each step (energy into the car = AC power × efficiency; out of it = AC
    power / efficiency). `session_net_energy_kwh` is the net AC energy into the car this visit."""

    kind = Kind.ev_charger_v2g
    setpoint_points = frozenset({"power_setpoint_kw"})

    def __init__(self, params: V2gChargerParams) -> None:
        super().__init__(params.default_watchdog_s)
        self.p = params
        self.setpoint_kw = params.default_kw
        self.visit: V2gSessionSpec | None = None
        self.soc_pct = 0.0
        self.session_net_energy_kwh = 0.0
        self.departed_soc_pct: dict[datetime, float] = {}  # SoC each car left with

    def _session_at(self, now: datetime) -> V2gSessionSpec | None:
        return next((s for s in self.p.sessions if s.arrival <= now < s.departure), None)

    def step(self, dt_s: float, now: datetime) -> None:
        visit = self._session_at(now)
        if visit is not self.visit:
            if self.visit is not None:
                self.departed_soc_pct[self.visit.departure] = self.soc_pct
            self.visit = visit
            self.session_net_energy_kwh = 0.0
            if visit is not None:
                self.soc_pct = visit.arrival_soc_pct
        if visit is None:
            self.power_kw = 0.0
            return
        cap, eff, h = visit.capacity_kwh, self.p.efficiency, dt_s / 3600
        kw = clamp(self.setpoint_kw, -self.p.max_discharge_kw, self.p.max_charge_kw)
        if kw > 0:
            room_kwh = max(0.0, (100.0 - self.soc_pct) / 100 * cap)
            kw = min(kw, room_kwh / eff / h) if h > 0 else 0.0
            self.soc_pct += kw * h * eff / cap * 100
        elif kw < 0:
            left_kwh = max(0.0, (self.soc_pct - self.p.hardware_min_soc_pct) / 100 * cap)
            kw = -min(-kw, left_kwh * eff / h) if h > 0 else 0.0
            self.soc_pct += kw * h / eff / cap * 100
        self.power_kw = kw
        self.session_net_energy_kwh += kw * h
        if now.timestamp() + dt_s >= visit.departure.timestamp():
            self.departed_soc_pct[visit.departure] = self.soc_pct

    def fallback(self) -> None:
        self.setpoint_kw = self.p.default_kw

    def _read(self) -> dict[str, float]:
        v = self.visit
        return {
            "plugged": float(v is not None),
            "power_kw": self.power_kw,
            "session_net_energy_kwh": self.session_net_energy_kwh,
            "vehicle_soc_pct": self.soc_pct if v is not None else 0.0,
            "vehicle_capacity_kwh": v.capacity_kwh if v is not None else 0.0,
            "departure_soc_pct": v.departure_soc_pct if v is not None else 0.0,
            "max_charge_kw": self.p.max_charge_kw,
            "max_discharge_kw": self.p.max_discharge_kw,
            "power_setpoint_kw": self.setpoint_kw,
        }

    def _apply(self, point: str, value: float) -> bool:
        if point != "power_setpoint_kw":
            return False
        self.setpoint_kw = value
        return True


register(ModelSpec(Kind.ev_charger_v2g, V2gChargerParams, lambda p, ctx: V2gChargerSim(p)))
