"""PV, curtailable loads, the building's base load and the site meter."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime

from building.params import BaseLoadParams, CurtailableLoadParams, MeterParams, PvParams
from building.weather import Environment
from devices.profile import Kind
from simulators.model import DeviceModel, clamp
from simulators.models import ModelSpec, register


class PvSim(DeviceModel):
    """PV inverter: power_kw = −min(rated·irradiance/1000·derate, rated·limit_pct/100)
    (negative while producing)."""

    kind = Kind.pv
    setpoint_points = frozenset({"limit_pct"})

    def __init__(self, params: PvParams, env: Environment) -> None:
        super().__init__(params.default_watchdog_s)
        self.p = params
        self.env = env
        self.limit_pct = 100.0
        self.available_kw = 0.0

    def step(self, dt_s: float, now: datetime) -> None:
        rated = self.p.rated_kw
        self.available_kw = rated * self.env.irradiance_w_m2(now) / 1000 * self.p.derate
        self.power_kw = -min(self.available_kw, rated * clamp(self.limit_pct, 0, 100) / 100)

    def fallback(self) -> None:
        self.limit_pct = 100.0

    def _read(self) -> dict[str, float]:
        return {"power_kw": self.power_kw, "rated_kw": self.p.rated_kw, "limit_pct": self.limit_pct}

    def _apply(self, point: str, value: float) -> bool:
        if point != "limit_pct":
            return False
        self.limit_pct = value
        return True


class CurtailableLoadSim(DeviceModel):
    """A load group: power_kw = shape(now) kW, or shed_power_kw while `shed`."""

    kind = Kind.curtailable_load
    setpoint_points = frozenset({"shed"})

    def __init__(self, params: CurtailableLoadParams, env: Environment) -> None:
        super().__init__(params.default_watchdog_s)
        self.p = params
        self.env = env
        self.shed = False

    def step(self, dt_s: float, now: datetime) -> None:
        full = max(0.0, self.env.shape(self.p.power_kw, now))
        self.power_kw = min(full, self.p.shed_power_kw) if self.shed else full

    def fallback(self) -> None:
        self.shed = False

    def _read(self) -> dict[str, float]:
        return {"power_kw": self.power_kw, "shed": float(self.shed)}

    def _apply(self, point: str, value: float) -> bool:
        if point != "shed":
            return False
        self.shed = bool(value)
        return True


class BaseLoad:
    """The building's uncontrolled load (kW, ≥ 0): peak_kw × shape(now) + N(0, noise_kw)."""

    def __init__(self, params: BaseLoadParams, env: Environment, rng: random.Random) -> None:
        self.p = params
        self.env = env
        self.rng = rng
        self.power_kw = 0.0

    def step(self, dt_s: float, now: datetime) -> None:
        """Set power_kw for the step starting at `now`."""
        kw = self.p.peak_kw * self.env.shape(self.p.shape, now)
        if self.p.noise_kw > 0:
            kw += self.rng.gauss(0.0, self.p.noise_kw)
        self.power_kw = max(0.0, kw)


class MeterSim(DeviceModel):
    """The site meter: import_power_kw = the sum of every device's power and the base load
    (negative when exporting); energy counters integrate import and export (kWh)."""

    kind = Kind.meter

    def __init__(self, params: MeterParams, total_kw: Callable[[], float]) -> None:
        super().__init__(None)
        self.total_kw = total_kw
        self.import_kwh = params.initial_import_kwh
        self.export_kwh = params.initial_export_kwh

    def step(self, dt_s: float, now: datetime) -> None:
        self.power_kw = self.total_kw()
        dt_h = dt_s / 3600
        if self.power_kw >= 0:
            self.import_kwh += self.power_kw * dt_h
        else:
            self.export_kwh -= self.power_kw * dt_h

    def fallback(self) -> None:
        pass

    def _read(self) -> dict[str, float]:
        return {
            "import_power_kw": self.power_kw,
            "import_energy_kwh": self.import_kwh,
            "export_energy_kwh": self.export_kwh,
        }

    def _apply(self, point: str, value: float) -> bool:
        return False


register(ModelSpec(Kind.pv, PvParams, lambda p, ctx: PvSim(p, ctx.env)))
register(
    ModelSpec(
        Kind.curtailable_load, CurtailableLoadParams, lambda p, ctx: CurtailableLoadSim(p, ctx.env)
    )
)
register(ModelSpec(Kind.meter, MeterParams, lambda p, ctx: MeterSim(p, ctx.total_kw)))
