"""Battery storage: a signed power setpoint (+ charge, − discharge) within its SoC limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from building.params import BatteryParams
from devices.profile import Kind
from optimiser import BatteryAsset
from optimiser.inputs import Asset
from vpp.control.flex import Flex
from vpp.control.types import Command, DeviceView, PlanStep
from vpp.kinds.base import KindPlugin, PlanContext, ReportRole
from vpp.kinds.registry import register
from vpp.site import Device


@dataclass
class BatteryFlex(Flex):
    """Battery: the knob is the power setpoint (+ charge, − discharge)."""

    order: int = 0
    soc_margin_pct: float = 1.0
    soc_max_pct: float = 100.0  # the battery's own upper SoC limit (its building model)

    def _soc_max_pct(self) -> float:
        return self.soc_max_pct

    def check_following(self, view: DeviceView) -> bool:
        soc = view.values.get("soc_pct")
        reserve = self.device.config.soc_reserve_pct or 0.0
        if soc is not None and (
            soc >= self._soc_max_pct() - self.soc_margin_pct or soc <= reserve + self.soc_margin_pct
        ):
            return self.follow_misses < 2  # held at a SoC limit: not evidence either way
        return super().check_following(view)

    def _bounds(self, view: DeviceView) -> tuple[float, float]:
        lo, hi = self.limit("power_setpoint_kw", -1e9, 1e9)
        soc = view.values.get("soc_pct")
        reserve = self.device.config.soc_reserve_pct or 0.0
        max_dis = view.values.get("max_discharge_kw")
        max_cha = view.values.get("max_charge_kw")
        if max_dis is not None:
            lo = max(lo, -max_dis)
        if max_cha is not None:
            hi = min(hi, max_cha)
        if soc is not None and soc <= reserve + self.soc_margin_pct:
            lo = max(lo, 0.0)  # guardrail: never discharge into the reserve
        if soc is not None and soc >= self._soc_max_pct() - self.soc_margin_pct:
            hi = min(hi, 0.0)
        return lo, hi

    def _set(self, kw: float, reason: str) -> list[Command]:
        self.command_kw = kw
        return [
            Command(
                self.id,
                "control_mode",
                self.device.profile.enum_value("control_mode", "remote"),
                reason,
            ),
            Command(self.id, "power_setpoint_kw", round(kw, 3), reason),
        ]

    def follow_plan(self, view: DeviceView, plan: PlanStep, now: datetime) -> list[Command]:
        lo, hi = self._bounds(view)
        return self._set(min(hi, max(lo, plan.power_kw.get(self.id, 0.0))), "plan")

    def sustainable_kw(self, view: DeviceView, now: datetime) -> float | None:
        """The discharge (kW, ≥ 0) that the energy above the reserve can hold until the end
        of the event being served; None outside an event or without a SoC reading."""
        soc = view.values.get("soc_pct")
        cap = view.values.get("capacity_kwh")
        if self.until is None or soc is None or not cap:
            return None
        hours = (self.until - now).total_seconds() / 3600
        if hours <= 0:
            return None
        reserve = (self.device.config.soc_reserve_pct or 0.0) + self.soc_margin_pct
        efficiency = 0.95  # AC out per kWh of SoC (the simulators' and typical LFP)
        return max(0.0, (soc - reserve) / 100 * cap * efficiency / hours)

    def guard(self, view: DeviceView, now: datetime) -> list[Command]:
        """In an event, never discharge faster than the energy above the reserve can hold to
        the event's end: an interval bought now would be a later interval starved (the loop
        sheds the difference elsewhere)."""
        rate = self.sustainable_kw(view, now)
        if rate is not None and self.command_kw is not None and self.command_kw < -rate - 0.5:
            return self._set(-rate, "energy_budget")
        return []

    def room_down_kw(self, view: DeviceView, now: datetime) -> float:
        lo, _ = self._bounds(view)
        # The loop's first resort, but not at a rate that empties the battery before the
        # event ends: the rest of the event would then fall on loads that cannot make it up.
        rate = self.sustainable_kw(view, now)
        if rate is not None:
            lo = max(lo, -rate)
        return max(0.0, (self.command_kw or 0.0) - lo)

    def room_up_kw(self, view: DeviceView, plan: PlanStep, now: datetime) -> float:
        _, hi = self._bounds(view)
        planned = plan.power_kw.get(self.id, 0.0)
        # In an event the loop aims at the request, not at what the plan would shed: a
        # discharge the site does not need is given back (down to idle), kept for the
        # event's later intervals.
        if self.until is not None:
            planned = max(planned, 0.0)
        ceiling = min(hi, planned)
        return max(0.0, ceiling - (self.command_kw or 0.0))

    def room_absorb_kw(self, view: DeviceView, now: datetime) -> float:
        _, hi = self._bounds(view)
        return max(0.0, hi - (self.command_kw or 0.0))

    def shift(self, delta_kw: float, view: DeviceView, now: datetime) -> list[Command]:
        lo, hi = self._bounds(view)
        return self._set(min(hi, max(lo, (self.command_kw or 0.0) + delta_kw)), "closed_loop")


class BatteryKind(KindPlugin):
    kind = Kind.battery
    wire_kind = "battery"
    params = BatteryParams
    telemetry_fields: ClassVar[Mapping[str, str]] = {"power_kw": "power_kw", "soc": "soc_pct"}
    report_role = ReportRole.device
    rating_point = "power_setpoint_kw"
    sections: ClassVar[Mapping[str, str]] = {"soc_reserve_pct": "only batteries have a SoC reserve"}

    def adapter(self, device: Device) -> Flex | None:
        model = self.model(device)
        assert isinstance(model, BatteryParams)
        return BatteryFlex(device, soc_max_pct=model.soc_max_pct)

    def assets(
        self,
        device: Device,
        view: DeviceView,
        model: Any,
        ctx: PlanContext,
        plan_input: object | None,
    ) -> list[Asset]:
        p = model
        assert isinstance(p, BatteryParams)
        v = view.values
        cap = v.get("capacity_kwh") or p.capacity_kwh
        reserve = (device.config.soc_reserve_pct or p.soc_min_pct) / 100 * cap
        soc = v.get("soc_pct", p.initial_soc_pct) / 100 * cap
        lo, hi = device.config.limits.get("power_setpoint_kw", (-1e9, 1e9))
        return [
            BatteryAsset(
                id=device.id,
                capacity_kwh=cap,
                charge_max_kw=min(v.get("max_charge_kw", p.max_charge_kw), hi),
                discharge_max_kw=min(v.get("max_discharge_kw", p.max_discharge_kw), -lo),
                charge_efficiency=p.charge_efficiency,
                discharge_efficiency=p.discharge_efficiency,
                soc_min_kwh=min(reserve, soc),
                soc_max_kwh=p.soc_max_pct / 100 * cap,
                soc_kwh=min(soc, cap),
                final_soc_kwh=None if p.final_soc_pct is None else p.final_soc_pct / 100 * cap,
                final_soc_hard=p.final_soc_hard,
                terminal_value=0.5 * max(ctx.import_price),
                # Degradation (about 0.25 CNY per kWh through the battery, each way, for a
                # C&I lithium-iron system): the battery cycles valley to peak, not flat to
                # peak, which also keeps the site's load (and any baseline) calm.
                throughput_cost=ctx.costs.battery_cycle_cost,
            )
        ]


register(BatteryKind())
