"""HVAC thermal zone: the unit's power limit and setpoint, within the zone's comfort band."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from building.params import HvacZoneParams
from building.weather import Environment
from devices.profile import Kind
from optimiser import ThermalZoneAsset
from optimiser.inputs import Asset
from vpp.control.flex import Flex, draws_up_to
from vpp.control.types import Command, DeviceView, PlanStep
from vpp.kinds.base import DeviceSeries, Direction, KindPlugin, PlanContext, ReportRole
from vpp.kinds.registry import register
from vpp.site import Device

PLAN_MARGIN_C = 0.5  # plan inside the band: the loop needs room to correct


@dataclass
class ZoneFlex(Flex):
    """HVAC zone: the knob is the unit's power limit; the setpoint follows the plan within the
    comfort band, and a zone at the top of its band is given power back at once."""

    order: int = 2
    ceiling: bool = True
    staggered_release: bool = True
    released_at: datetime | None = None
    comfort_margin_c: float = 0.3
    guard_release_c: float = 0.8
    guarded: bool = False

    def _band(self) -> tuple[float, float]:
        c = self.device.config.comfort
        return (c.min_c, c.max_c) if c else (22.0, 26.0)

    def _max_kw(self) -> float:
        return self.limit("power_limit_kw", 0.0, 1e9)[1]

    def _setpoint(self, plan: PlanStep) -> float:
        lo, hi = self._band()
        planned = plan.zone_temp_c.get(self.id, (lo + hi) / 2)
        return round(min(hi - self.comfort_margin_c, max(lo, planned)), 1)

    def release_at(self, when: datetime) -> None:
        self.released_at = when

    def follow_plan(self, view: DeviceView, plan: PlanStep, now: datetime) -> list[Command]:
        self.command_kw = None
        return [
            Command(self.id, "on_off", 1, "plan"),
            Command(self.id, "setpoint_c", self._setpoint(plan), "plan"),
            Command(self.id, "power_limit_kw", round(self._max_kw(), 1), "plan"),
        ]

    def _too_warm(self, view: DeviceView) -> bool:
        """At the top of the band; once there, until it has cooled well below (hysteresis,
        so that the loop does not cut and restore the unit every cycle)."""
        t = view.values.get("zone_temp_c")
        if t is None:
            return self.guarded
        top = self._band()[1]
        if t >= top - self.comfort_margin_c:
            self.guarded = True
        elif t < top - self.guard_release_c:
            self.guarded = False
        return self.guarded

    def room_down_kw(self, view: DeviceView, now: datetime) -> float:
        if self._too_warm(view):
            return 0.0
        drawing = view.values.get("power_kw", 0.0)
        current = min(self.command_kw, drawing) if self.command_kw is not None else drawing
        return max(0.0, current)

    def room_up_kw(self, view: DeviceView, plan: PlanStep, now: datetime) -> float:
        if self.command_kw is None:
            return 0.0
        if self.released_at is not None and now < self.released_at:
            return 0.0  # staggered release: not this zone's turn yet
        if not draws_up_to(self.command_kw, view):
            return 0.0  # it does not use what it may draw: more would change nothing
        return max(0.0, self._max_kw() - self.command_kw)

    def shift(self, delta_kw: float, view: DeviceView, now: datetime) -> list[Command]:
        drawing = view.values.get("power_kw", 0.0)
        base = self.command_kw if self.command_kw is not None else drawing
        # From what it draws, both ways: a limit above the draw is not power given back.
        base = min(base, drawing)
        kw = max(0.0, min(self._max_kw(), base + delta_kw))
        self.command_kw = kw
        return [Command(self.id, "power_limit_kw", round(kw, 1), "closed_loop")]

    def guard(self, view: DeviceView, now: datetime) -> list[Command]:
        """A zone at the top of its band gets its full power limit back, event or not, with
        its setpoint at the band's edge: the unit then draws what holds the zone there, not
        its full power to cool back to the plan's setpoint (a step the loop would have to
        make up elsewhere). The plan's setpoint returns when the loop lets go."""
        if self._too_warm(view) and self.command_kw is not None:
            self.command_kw = None
            hold = round(self._band()[1] - self.comfort_margin_c, 1)
            return [
                Command(self.id, "setpoint_c", hold, "comfort_guard"),
                Command(self.id, "power_limit_kw", round(self._max_kw(), 1), "comfort_guard"),
            ]
        return []


class ZoneKind(KindPlugin):
    kind = Kind.hvac
    wire_kind = "hvac"
    direction = Direction.consumes
    rating_point = "power_limit_kw"
    params = HvacZoneParams
    telemetry_fields: ClassVar[Mapping[str, str]] = {
        "power_kw": "power_kw",
        "zone_temp_c": "zone_temp_c",
        "setpoint_c": "setpoint_c",
    }
    report_role = ReportRole.zone
    sections: ClassVar[Mapping[str, str]] = {"comfort": "only hvac devices have a comfort band"}

    def adapter(self, device: Device) -> Flex | None:
        return ZoneFlex(device)

    def assets(
        self,
        device: Device,
        view: DeviceView,
        model: Any,
        ctx: PlanContext,
        plan_input: object | None,
    ) -> list[Asset]:
        z = model
        assert isinstance(z, HvacZoneParams)
        band = device.config.comfort
        lo_c, hi_c = (band.min_c, band.max_c) if band else (22.0, 26.0)
        max_kw = min(z.max_power_kw, device.config.limits.get("power_limit_kw", (0, 1e9))[1])
        steps = ctx.grid.steps
        return [
            ThermalZoneAsset(
                id=device.id,
                r_k_per_kw=z.r_k_per_kw,
                c_kwh_per_k=z.c_kwh_per_k,
                cop=z.cop,
                max_kw=max_kw,
                temp_c=view.values.get("zone_temp_c", z.initial_temp_c),
                comfort_min_c=[lo_c + PLAN_MARGIN_C] * steps,
                comfort_max_c=[hi_c - PLAN_MARGIN_C] * steps,
                internal_gain_kw=list(ctx.device_series[device.id]),
            )
        ]

    def forecast(
        self, device: Device, model: Any, env: Environment, mids: list[datetime]
    ) -> DeviceSeries:
        z = model
        assert isinstance(z, HvacZoneParams)
        gains = [
            env.shape(z.internal_gains_kw, t) + z.solar_gain_factor * env.irradiance_w_m2(t) / 1000
            for t in mids
        ]
        return DeviceSeries(own_kw=gains)


register(ZoneKind())
