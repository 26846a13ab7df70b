"""HVAC thermal zone: the unit's power limit and setpoint, within the zone's comfort band."""

from __future__ import annotations

import math
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
    comfort band, and a zone at the top of its band is given power back at once.

    In an event the zone's headroom is a budget spent over the whole event: the most it may
    be warmed to by now is the plan's temperature for this step (plus `plan_slack_c`), and
    at least a ramp from its temperature when the event's loop took it to the top of the
    band (plus the guard's hysteresis), reached at the event's end (all a strategy without a
    plan has). A zone at that
    ceiling is held there (setpoint at the ceiling, full power limit), as one at the top
    is: shed all at once, a zone's headroom buys the event's first intervals and starves
    its last ones (issue 12: the hotel of seed 4 delivered 48 of 63 kW at the end)."""

    order: int = 2
    ceiling: bool = True
    staggered_release: bool = True
    released_at: datetime | None = None
    comfort_margin_c: float = 0.3
    guard_release_c: float = 0.8
    guarded: bool = False
    # (start, zone temperature then, end) of the event whose headroom is being spent.
    budget: tuple[datetime, float, datetime] | None = None
    held_c: float | None = None  # the setpoint the guard holds the zone at (None: not held)
    planned_c: float | None = None  # the plan's temperature at the end of this step
    plan_slack_c: float = 0.3

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
        self.held_c = None
        return [
            Command(self.id, "on_off", 1, "plan"),
            Command(self.id, "setpoint_c", self._setpoint(plan), "plan"),
            Command(self.id, "power_limit_kw", round(self._max_kw(), 1), "plan"),
        ]

    def ceiling_c(self, now: datetime, temp_c: float | None) -> float:
        """The warmest the zone may be now (degC): the top of its band less the margin, and
        in an event the budget's ramp to it (see the class docstring)."""
        top = self._band()[1] - self.comfort_margin_c
        until = self.until
        if until is None or now >= until:
            self.budget = None
            return top
        if (self.budget is None or self.budget[2] != until) and temp_c is not None:
            # From the guard's hysteresis above the zone's temperature: a ramp from the
            # temperature itself would hold the zone at once, unshed until the ramp had
            # risen past the hysteresis.
            slack = self.guard_release_c - self.comfort_margin_c
            self.budget = (now, min(temp_c + slack, top), until)
        if self.budget is None:
            return top
        start, from_c, end = self.budget
        done = (now - start) / (end - start)
        ramp = from_c + (top - from_c) * min(1.0, max(0.0, done))
        planned = -math.inf if self.planned_c is None else self.planned_c + self.plan_slack_c
        return min(top, max(ramp, planned))

    def see_plan(self, plan: PlanStep) -> None:
        self.planned_c = plan.zone_temp_c.get(self.id)

    def _too_warm(self, view: DeviceView, now: datetime) -> bool:
        """At its ceiling (the top of the band, or the event budget's ramp); once there,
        until it has cooled well below (hysteresis, so that the loop does not cut and
        restore the unit every cycle)."""
        t = view.values.get("zone_temp_c")
        ceiling = self.ceiling_c(now, t)
        if t is None:
            return self.guarded
        if t >= ceiling:
            self.guarded = True
        elif t < ceiling - (self.guard_release_c - self.comfort_margin_c):
            self.guarded = False
        return self.guarded

    def room_down_kw(self, view: DeviceView, now: datetime) -> float:
        if self._too_warm(view, now):
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
        """A zone at its ceiling (the top of its band, or in an event the budget's ramp) gets
        its full power limit back, event or not, with its setpoint at the ceiling: the unit
        then draws what holds the zone there, not its full power to cool back to the plan's
        setpoint (a step the loop would have to make up elsewhere). On the ramp the setpoint
        follows it up. The plan's setpoint returns when the loop lets go."""
        if not self._too_warm(view, now):
            return []
        hold = round(self.ceiling_c(now, view.values.get("zone_temp_c")), 1)
        if self.command_kw is None and (self.held_c is None or hold <= self.held_c):
            return []  # not shed, and not held on a ramp that has risen since
        self.command_kw = None
        self.held_c = hold
        return [
            Command(self.id, "setpoint_c", hold, "comfort_guard"),
            Command(self.id, "power_limit_kw", round(self._max_kw(), 1), "comfort_guard"),
        ]


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
