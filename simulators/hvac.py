"""Thermal zone physics: the 1R1C model of domain.md §6 and an HVAC unit tracking its
setpoint within its power limit."""

from __future__ import annotations

import math
from datetime import datetime

from building.params import HvacZoneParams
from building.weather import Environment
from devices.profile import Kind
from simulators.model import DeviceModel, clamp
from simulators.models import ModelSpec, register

MODE_AUTO, MODE_HEAT, MODE_DRY, MODE_FAN, MODE_COOL = 0, 1, 2, 3, 4


class HvacZoneSim(DeviceModel):
    """One zone and its HVAC unit.

    T[k+1] = a·T[k] + (1−a)·(T_out + R·(Q_int + Q_sol − COP·P_el)), a = exp(−Δt/(R·C)), with
    T in degC, R in K/kW, C in kWh/K, Δt in h, gains and P_el in kW
    (Q_sol = solar_gain_factor · irradiance/1000). In cool mode the unit draws the electric
    power that brings T to the setpoint at the end of the step, clamped to
    [0, min(power_limit_kw, max_power_kw)] (a deadbeat controller: no overshoot, settles in
    one step when power suffices). Heat mode uses +COP·P_el; auto picks cool or heat by the
    free-running temperature; dry, fan and off draw nothing.
    """

    kind = Kind.hvac
    setpoint_points = frozenset({"setpoint_c", "power_limit_kw", "mode", "on_off"})

    def __init__(self, params: HvacZoneParams, env: Environment) -> None:
        super().__init__(params.default_watchdog_s)
        self.p = params
        self.env = env
        self.temp_c = params.initial_temp_c
        self.setpoint_c = params.local_setpoint_c
        self.limit_kw = params.max_power_kw
        self.mode = MODE_COOL
        self.on = True
        self.outdoor_c = params.initial_temp_c

    def step(self, dt_s: float, now: datetime) -> None:
        p = self.p
        r = p.r_k_per_kw
        a = math.exp(-(dt_s / 3600) / (r * p.c_kwh_per_k))
        self.outdoor_c = self.env.outdoor_temp_c(now)
        gains = self.env.shape(p.internal_gains_kw, now)
        gains += p.solar_gain_factor * self.env.irradiance_w_m2(now) / 1000
        free = self.outdoor_c + r * gains  # the temperature the zone tends to without HVAC
        free_next = a * self.temp_c + (1 - a) * free
        cap = max(0.0, min(self.limit_kw, p.max_power_kw))
        # The (1-a)·(...) term needed to land exactly on the setpoint.
        wanted = (self.setpoint_c - a * self.temp_c) / (1 - a) if a < 1 else free
        power, sign = 0.0, -1.0
        cooling = self.mode == MODE_COOL or (self.mode == MODE_AUTO and free_next > self.setpoint_c)
        heating = self.mode == MODE_HEAT or (self.mode == MODE_AUTO and free_next < self.setpoint_c)
        if self.on and cooling:
            power = clamp((free - wanted) / (r * p.cop), 0.0, cap)
        elif self.on and heating:
            power, sign = clamp((wanted - free) / (r * p.cop), 0.0, cap), 1.0
        self.temp_c = a * self.temp_c + (1 - a) * (free + sign * r * p.cop * power)
        self.power_kw = power

    def fallback(self) -> None:
        self.setpoint_c = self.p.local_setpoint_c
        self.limit_kw = self.p.max_power_kw
        self.mode = MODE_COOL
        self.on = True

    def _read(self) -> dict[str, float]:
        return {
            "zone_temp_c": self.temp_c,
            "setpoint_c": self.setpoint_c,
            "mode": self.mode,
            "power_kw": self.power_kw,
            "power_limit_kw": self.limit_kw,
            "on_off": float(self.on),
            "outdoor_temp_c": self.outdoor_c,
        }

    def _apply(self, point: str, value: float) -> bool:
        if point == "setpoint_c":
            self.setpoint_c = value
        elif point == "power_limit_kw":
            self.limit_kw = value
        elif point == "mode":
            self.mode = int(value)
        elif point == "on_off":
            self.on = bool(value)
        else:
            return False
        return True


register(ModelSpec(Kind.hvac, HvacZoneParams, lambda p, ctx: HvacZoneSim(p, ctx.env)))
