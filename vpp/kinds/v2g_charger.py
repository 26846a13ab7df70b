"""Bidirectional (V2G) EV charger: a signed power setpoint (+ charge the car, − discharge it
into the building) that never leaves the car under its departure SoC.

Dispatch: like a battery whose floor is the car's departure need. Above it, the car may give
energy back for a curtailment, at a rate the energy above the floor can hold to the event's
end; at or under it, the least charging power that still reaches it by departure (15 %
margin) is a floor the closed loop never cuts. Departure comes from the site file's `ev:`
defaults (chargers rarely know it); the need from the charger's `departure_soc_pct`.
Plan: a battery block connected until departure with the departure SoC as a hard floor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from devices.profile import Kind
from optimiser import BatteryAsset
from optimiser.inputs import Asset
from vpp.control.flex import Flex
from vpp.control.types import Command, DeviceView, PlanStep
from vpp.kinds.base import KindPlugin, PlanContext, ReportRole
from vpp.kinds.registry import register
from vpp.site import Device

EFFICIENCY = 0.93  # one way, AC side; a DC wallbox's typical figure


@dataclass(frozen=True)
class V2gSession:
    """A plugged car as the planner sees it (plain data): its battery, SoC and departure
    need (kWh), hours to departure, and the charger's power limits each way (kW)."""

    capacity_kwh: float
    soc_kwh: float
    departure_kwh: float
    left_h: float
    charge_max_kw: float
    discharge_max_kw: float


@dataclass
class V2gFlex(Flex):
    """The knob is the signed setpoint; the departure SoC is the floor."""

    order: int = 1
    plugged_since: datetime | None = None
    soc_margin_pct: float = 1.0

    def _session(self, view: DeviceView, now: datetime) -> V2gSession | None:
        v = view.values
        if v.get("plugged", 0.0) < 0.5 or not v.get("vehicle_capacity_kwh"):
            self.plugged_since = None
            return None
        if self.plugged_since is None:
            self.plugged_since = now
        ev = self.device.config.ev
        stay_h = ev.departure_after_h if ev else 9.0
        left_h = max(0.0, stay_h - (now - self.plugged_since).total_seconds() / 3600)
        cap = float(v["vehicle_capacity_kwh"])
        lo, hi = self.limit("power_setpoint_kw", -1e9, 1e9)
        return V2gSession(
            capacity_kwh=cap,
            soc_kwh=v.get("vehicle_soc_pct", 0.0) / 100 * cap,
            departure_kwh=v.get("departure_soc_pct", 100.0) / 100 * cap,
            left_h=left_h,
            charge_max_kw=max(0.0, min(hi, v.get("max_charge_kw", hi))),
            discharge_max_kw=max(0.0, min(-lo, v.get("max_discharge_kw", -lo))),
        )

    def plan_input(self, view: DeviceView, now: datetime) -> V2gSession | None:
        return self._session(view, now)

    def _bounds(self, view: DeviceView, now: datetime) -> tuple[float, float]:
        """(most discharge as a negative kW, most charge kW) that keep the departure need."""
        s = self._session(view, now)
        if s is None:
            return 0.0, 0.0
        margin = self.soc_margin_pct / 100 * s.capacity_kwh
        above = s.soc_kwh - s.departure_kwh - margin
        if above <= 0:
            # At or under the need: charge at least what reaches it by departure.
            need = -above
            if s.left_h <= 0.25:
                floor = s.charge_max_kw
            else:
                floor = min(s.charge_max_kw, 1.15 * need / EFFICIENCY / s.left_h)
            return floor, s.charge_max_kw
        # Above it: discharge, but not faster than the energy above the floor lasts to the
        # end of the event being served (or to departure outside one).
        until_h = s.left_h
        if self.until is not None:
            until_h = min(until_h, (self.until - now).total_seconds() / 3600)
        rate = above * EFFICIENCY / until_h if until_h > 0 else 0.0
        return -min(s.discharge_max_kw, rate), s.charge_max_kw

    def _set(self, kw: float, reason: str) -> list[Command]:
        self.command_kw = kw
        return [Command(self.id, "power_setpoint_kw", round(kw, 1), reason)]

    def check_following(self, view: DeviceView) -> bool:
        soc = view.values.get("vehicle_soc_pct")
        if view.values.get("plugged", 0.0) < 0.5 or (
            soc is not None and soc >= 100.0 - self.soc_margin_pct
        ):
            return self.follow_misses < 2  # no car, or full: not evidence either way
        return super().check_following(view)

    def follow_plan(self, view: DeviceView, plan: PlanStep, now: datetime) -> list[Command]:
        lo, hi = self._bounds(view, now)
        planned = plan.power_kw.get(self.id)
        kw = hi if planned is None else planned  # unplanned: charge (a car plugged in wants to)
        return self._set(min(hi, max(lo, kw)), "plan")

    def room_down_kw(self, view: DeviceView, now: datetime) -> float:
        lo, _ = self._bounds(view, now)
        return max(0.0, (self.command_kw or 0.0) - lo)

    def room_up_kw(self, view: DeviceView, plan: PlanStep, now: datetime) -> float:
        _, hi = self._bounds(view, now)
        ceiling = min(hi, plan.power_kw.get(self.id, hi))
        return max(0.0, ceiling - (self.command_kw or 0.0))

    def shift(self, delta_kw: float, view: DeviceView, now: datetime) -> list[Command]:
        lo, hi = self._bounds(view, now)
        return self._set(min(hi, max(lo, (self.command_kw or 0.0) + delta_kw)), "closed_loop")


class V2gChargerKind(KindPlugin):
    kind = Kind.ev_charger_v2g
    wire_kind = "ev_charger_v2g"
    telemetry_fields: ClassVar[Mapping[str, str]] = {
        "power_kw": "power_kw",
        "plugged": "plugged",
        "energy_kwh": "session_net_energy_kwh",
        "soc": "vehicle_soc_pct",
    }
    boolean_fields = frozenset({"plugged"})
    report_role = ReportRole.device
    rating_point = "power_setpoint_kw"  # two-way: within its rating either way
    sections: ClassVar[Mapping[str, str]] = {"ev": "only EV chargers have EV defaults"}

    def adapter(self, device: Device) -> Flex | None:
        return V2gFlex(device)

    def assets(
        self,
        device: Device,
        view: DeviceView,
        model: Any,
        ctx: PlanContext,
        plan_input: object | None,
    ) -> list[Asset]:
        s = plan_input
        if not isinstance(s, V2gSession) or s.left_h <= 0:
            return []
        soc = min(s.soc_kwh, s.capacity_kwh)
        return [
            BatteryAsset(
                id=device.id,
                capacity_kwh=s.capacity_kwh,
                charge_max_kw=s.charge_max_kw,
                discharge_max_kw=s.discharge_max_kw,
                charge_efficiency=EFFICIENCY,
                discharge_efficiency=EFFICIENCY,
                soc_min_kwh=min(s.departure_kwh, soc),
                soc_kwh=soc,
                available_steps=max(1, int(s.left_h / ctx.grid.dt_h)),
                departure_soc_kwh=min(s.departure_kwh, s.capacity_kwh),
                throughput_cost=ctx.costs.battery_cycle_cost,
            )
        ]


register(V2gChargerKind())
