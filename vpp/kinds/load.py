"""Sheddable load group: all or nothing (a shed coil)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from building.params import CurtailableLoadParams
from building.weather import Environment
from devices.profile import Kind
from optimiser import CurtailableLoadAsset
from optimiser.inputs import Asset
from vpp.control.flex import Flex
from vpp.control.types import Command, DeviceView, PlanStep
from vpp.kinds.base import DeviceSeries, Direction, KindPlugin, PlanContext, ReportRole
from vpp.kinds.registry import register
from vpp.site import Device


@dataclass
class LoadFlex(Flex):
    """Curtailable load: all or nothing (shed coil)."""

    order: int = 3
    divisible: bool = False
    ceiling: bool = True  # shed: at most what it draws when shed (0 kW for the simulators)
    shed_power_kw: float = 0.0

    def follow_plan(self, view: DeviceView, plan: PlanStep, now: datetime) -> list[Command]:
        planned = plan.power_kw.get(self.id)
        want_shed = planned is not None and planned <= 0.0
        self._set_shed(want_shed)
        return [Command(self.id, "shed", 1.0 if want_shed else 0.0, "plan")]

    @property
    def shed(self) -> bool:
        """Told to shed: its ceiling is then what it may draw shed (0 kW)."""
        return self.command_kw is not None

    def _set_shed(self, shed: bool) -> None:
        self.command_kw = 0.0 if shed else None  # what it may draw; None: no ceiling

    def room_down_kw(self, view: DeviceView, now: datetime) -> float:
        return 0.0 if self.shed else max(0.0, view.values.get("power_kw", 0.0))

    def room_up_kw(self, view: DeviceView, plan: PlanStep, now: datetime) -> float:
        return self.shed_power_kw if self.shed else 0.0

    def shift(self, delta_kw: float, view: DeviceView, now: datetime) -> list[Command]:
        if delta_kw < 0 and not self.shed:
            self.shed_power_kw = view.values.get("power_kw", 0.0)
            self._set_shed(True)
            return [Command(self.id, "shed", 1.0, "closed_loop")]
        if delta_kw > 0 and self.shed:
            self._set_shed(False)
            return [Command(self.id, "shed", 0.0, "closed_loop")]
        return []


class LoadKind(KindPlugin):
    kind = Kind.curtailable_load
    wire_kind = "curtailable_load"
    params = CurtailableLoadParams
    report_role = ReportRole.device
    direction = Direction.consumes

    def adapter(self, device: Device) -> Flex | None:
        return LoadFlex(device)

    def assets(
        self,
        device: Device,
        view: DeviceView,
        model: Any,
        ctx: PlanContext,
        plan_input: object | None,
    ) -> list[Asset]:
        load = list(ctx.device_series[device.id])
        return [
            CurtailableLoadAsset(
                id=device.id,
                load_kw=load,
                max_shed_kw=max(load),
                max_duration_h=ctx.costs.load_max_shed_h,
                cost=ctx.costs.load_shed_cost,
            )
        ]

    def forecast(
        self, device: Device, model: Any, env: Environment, mids: list[datetime]
    ) -> DeviceSeries:
        lp = model
        assert isinstance(lp, CurtailableLoadParams)
        return DeviceSeries(own_kw=[max(0.0, env.shape(lp.power_kw, t)) for t in mids])


register(LoadKind())
