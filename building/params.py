"""Physics parameters of each simulated device kind: strict, with defaults for every field.

A site file's `sim:` block of a device is validated with its kind's model (the agent's
kind plugin, `vpp.kinds`; the simulator's registry, `simulators.models`). Units are in the
field names; power is consumption positive (+kW drawn from the grid).

Time-varying inputs (`Shape`) are either a constant, a list of N values spread evenly over
the local day (N=24: one per hour, linear interpolation between them, wrapping at midnight),
or a series of `[aware datetime, value]` pairs (linear interpolation, held at the ends).
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

SeriesPoint = tuple[AwareDatetime, float]
Shape = float | Annotated[list[float], Field(min_length=1)] | list[SeriesPoint]

# An office day: low at night, high 08:00-18:00 (fractions of the peak), one value per hour.
OFFICE_DAY = [
    0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.35, 0.5, 0.8, 0.95, 1.0, 1.0,
    0.95, 1.0, 1.0, 1.0, 0.95, 0.85, 0.6, 0.45, 0.4, 0.35, 0.3, 0.3,
]  # fmt: skip


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatteryParams(_Params):
    """A battery: energy in kWh, power in kW (+ charging), efficiencies 0..1 one way."""

    capacity_kwh: float = Field(default=200.0, gt=0)
    max_charge_kw: float = Field(default=100.0, ge=0)
    max_discharge_kw: float = Field(default=100.0, ge=0)
    charge_efficiency: float = Field(default=0.95, gt=0, le=1)
    discharge_efficiency: float = Field(default=0.95, gt=0, le=1)
    soc_min_pct: float = Field(default=5.0, ge=0, le=100)
    soc_max_pct: float = Field(default=95.0, ge=0, le=100)
    initial_soc_pct: float = Field(default=50.0, ge=0, le=100)
    soc_reserve_pct: float = Field(default=10.0, ge=0, le=100)
    default_watchdog_s: float = Field(default=60.0, gt=0)
    final_soc_pct: float | None = Field(default=None, ge=0, le=100)
    """The SoC the plan keeps at its horizon's end (soft: a penalty per kWh missing)."""
    final_soc_hard: bool = False
    """True: `final_soc_pct` is a hard constraint (a plan that cannot meet it is the
    fallback's)."""

    @model_validator(mode="after")
    def _check(self) -> BatteryParams:
        if self.soc_min_pct > self.soc_max_pct:
            raise ValueError("soc_min_pct is above soc_max_pct")
        return self


class EvSessionSpec(_Params):
    """One vehicle visit. `arrival`/`departure`: seconds after the simulation start (a
    number) or an aware datetime. `energy_needed_kwh`: energy the vehicle takes before it is
    full; `vehicle_max_kw`: the vehicle's own charging power limit."""

    arrival: float | AwareDatetime
    departure: float | AwareDatetime
    energy_needed_kwh: float = Field(default=20.0, ge=0)
    vehicle_max_kw: float = Field(default=11.0, gt=0)

    def window(self, start: datetime) -> tuple[float, float]:
        """(arrival, departure) as seconds after `start`."""
        return _seconds(self.arrival, start), _seconds(self.departure, start)

    @model_validator(mode="after")
    def _check(self) -> EvSessionSpec:
        if isinstance(self.arrival, datetime) != isinstance(self.departure, datetime):
            raise ValueError("arrival and departure must both be seconds or both datetimes")
        if _key(self.arrival) >= _key(self.departure):
            raise ValueError("departure must be after arrival")
        return self


def _seconds(t: float | datetime, start: datetime) -> float:
    return (t - start).total_seconds() if isinstance(t, datetime) else float(t)


def _key(t: float | datetime) -> float:
    return t.timestamp() if isinstance(t, datetime) else float(t)


class EvChargerParams(_Params):
    """An EV charger: `max_power_kw` hardware limit, `default_limit_kw` its own limit when no
    controller writes one (start and watchdog fallback), `min_power_kw` the lowest non-zero
    power (IEC 61851 6 A; 0 = none: a lower limit gives 0 kW). `repeat_daily`: every session
    comes back each day, 24 h after the previous visit (the sessions must fit within 24 h).
    `session_counter`: what `session_energy_kwh` counts."""

    max_power_kw: float = Field(default=22.0, gt=0)
    default_limit_kw: float = Field(default=11.0, ge=0)
    min_power_kw: float = Field(default=0.0, ge=0)
    phases: int = Field(default=3, ge=1, le=3)
    repeat_daily: bool = False
    default_watchdog_s: float = Field(default=60.0, gt=0)
    sessions: list[EvSessionSpec] = Field(default_factory=list)
    session_counter: Literal["per_session", "cumulative"] = "per_session"
    """How `session_energy_kwh` counts: `per_session` resets to 0 when a car plugs in;
    `cumulative` keeps counting across cars (a charger that only has an energy total)."""

    @model_validator(mode="after")
    def _check(self) -> EvChargerParams:
        if self.default_limit_kw > self.max_power_kw:
            raise ValueError("default_limit_kw is above max_power_kw")
        ordered = sorted(range(len(self.sessions)), key=lambda i: _key(self.sessions[i].arrival))
        for i, j in itertools.pairwise(ordered):
            if _key(self.sessions[i].departure) > _key(self.sessions[j].arrival):
                raise ValueError(f"sessions[{j}] arrives before sessions[{i}] departs")
        if self.repeat_daily and ordered:
            first, last = (
                self.sessions[ordered[0]],
                max(self.sessions, key=lambda s: _key(s.departure)),
            )
            if _key(last.departure) > _key(first.arrival) + 86400:
                raise ValueError("repeat_daily: the sessions must fit within 24 h")
        return self


class HvacZoneParams(_Params):
    """A thermal zone (1R1C) and its HVAC unit. R in K/kW, C in kWh/K, gains in kW, COP
    dimensionless, `solar_gain_factor` in kW of heat per kW/m2 of irradiance (effective
    aperture, m2)."""

    r_k_per_kw: float = Field(default=2.0, gt=0)
    c_kwh_per_k: float = Field(default=10.0, gt=0)
    cop: float = Field(default=3.5, gt=0)
    max_power_kw: float = Field(default=15.0, gt=0)
    initial_temp_c: float = 26.0
    local_setpoint_c: float = 24.0
    internal_gains_kw: Shape = 8.0
    solar_gain_factor: float = Field(default=2.0, ge=0)
    default_watchdog_s: float = Field(default=60.0, gt=0)


class PvParams(_Params):
    """A PV array: `rated_kw` at 1000 W/m2; output = -rated · irradiance/1000 · derate."""

    rated_kw: float = Field(default=50.0, ge=0)
    derate: float = Field(default=0.85, gt=0, le=1)
    default_watchdog_s: float = Field(default=60.0, gt=0)


class CurtailableLoadParams(_Params):
    """A sheddable load group: `power_kw` drawn when not shed (constant or shape),
    `shed_power_kw` left when shed (kW)."""

    power_kw: Shape = 20.0
    shed_power_kw: float = Field(default=0.0, ge=0)
    default_watchdog_s: float = Field(default=60.0, gt=0)


class BaseLoadParams(_Params):
    """The building's uncontrolled load behind the meter: `peak_kw` × `shape` (fractions),
    plus Gaussian noise of `noise_kw` standard deviation (seeded)."""

    peak_kw: float = Field(default=150.0, ge=0)
    shape: Shape = Field(default_factory=lambda: list(OFFICE_DAY))
    noise_kw: float = Field(default=0.0, ge=0)


class MeterParams(_Params):
    """The site meter: energy counters at the start (kWh)."""

    initial_import_kwh: float = Field(default=0.0, ge=0)
    initial_export_kwh: float = Field(default=0.0, ge=0)
