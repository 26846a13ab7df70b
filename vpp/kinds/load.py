"""Sheddable load group: all or nothing (a shed coil), with a price and limits per load.

The site file gives each load `shed_cost_per_kwh` (the value of the service lost),
`max_shed_min` (the longest shed), `min_rest_min` (the shortest run between two sheds) and
`dr_only` (default true: shed only for grid events and site limits, never for the tariff).
The plan and the closed loop both keep them: the plan through the optimiser's asset, the
loop through this adapter (it releases a load at its longest shed and does not shed a
resting one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
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
from vpp.site import Device, DeviceConfig

DEFAULT_MAX_SHED_MIN = 240.0
DEFAULT_MIN_REST_MIN = 60.0


@dataclass(frozen=True)
class ShedPolicy:
    """A load's shedding terms, the site file's fields with their defaults filled in.
    `cost_per_kwh` None: the planner's default price of a shed."""

    cost_per_kwh: float | None
    max_shed_min: float
    min_rest_min: float
    dr_only: bool

    @classmethod
    def of(cls, config: DeviceConfig) -> ShedPolicy:
        return cls(
            cost_per_kwh=config.shed_cost_per_kwh,
            max_shed_min=config.max_shed_min or DEFAULT_MAX_SHED_MIN,
            min_rest_min=(
                DEFAULT_MIN_REST_MIN if config.min_rest_min is None else config.min_rest_min
            ),
            dr_only=True if config.dr_only is None else config.dr_only,
        )


@dataclass(frozen=True)
class ShedState:
    """What the planner needs of a load's live state: hours shed so far (0: running) and
    hours it must still run before it may be shed again."""

    shed_h: float
    rest_left_h: float


@dataclass
class LoadFlex(Flex):
    """Curtailable load: all or nothing (shed coil)."""

    order: int = 3
    divisible: bool = False
    ceiling: bool = True  # shed: at most what it draws when shed (0 kW for the simulators)
    shed_power_kw: float = 0.0
    shed_since: datetime | None = None
    released_at: datetime | None = None

    @cached_property
    def policy(self) -> ShedPolicy:
        """The site file's shed policy (made once: each cycle asks for it twice)."""
        return ShedPolicy.of(self.device.config)

    @property
    def shed_rank(self) -> float:
        cost = self.policy.cost_per_kwh
        return 0.0 if cost is None else cost

    def _may_shed(self, now: datetime) -> bool:
        """Not shed, and rested long enough since the last shed."""
        if self.shed:
            return False
        rest = timedelta(minutes=self.policy.min_rest_min)
        return self.released_at is None or now - self.released_at >= rest

    def _shed_too_long(self, now: datetime) -> bool:
        limit = timedelta(minutes=self.policy.max_shed_min)
        return self.shed and self.shed_since is not None and now - self.shed_since >= limit

    def follow_plan(self, view: DeviceView, plan: PlanStep, now: datetime) -> list[Command]:
        planned = plan.power_kw.get(self.id)
        want_shed = planned is not None and planned <= 0.0
        if want_shed and not self.shed and not self._may_shed(now):
            want_shed = False  # resting: the plan's step was made before the last release
        if self._shed_too_long(now):
            want_shed = False
        self._set_shed(want_shed, now)
        return [Command(self.id, "shed", 1.0 if want_shed else 0.0, "plan")]

    @property
    def shed(self) -> bool:
        """Told to shed: its ceiling is then what it may draw shed (0 kW)."""
        return self.command_kw is not None

    def _set_shed(self, shed: bool, now: datetime) -> None:
        if shed and not self.shed:
            self.shed_since = now
        elif not shed and self.shed:
            self.released_at = now
            self.shed_since = None
        self.command_kw = 0.0 if shed else None  # what it may draw; None: no ceiling

    def guard(self, view: DeviceView, now: datetime) -> list[Command]:
        """At its longest shed, the load runs again (the loop makes up for it elsewhere)."""
        if self._shed_too_long(now):
            self._set_shed(False, now)
            return [Command(self.id, "shed", 0.0, "max_shed")]
        return []

    def room_down_kw(self, view: DeviceView, now: datetime) -> float:
        if not self._may_shed(now):
            return 0.0
        return max(0.0, view.values.get("power_kw", 0.0))

    def room_up_kw(self, view: DeviceView, plan: PlanStep, now: datetime) -> float:
        # In an event, a load that must rest after a shed stays shed (until its longest
        # shed, see guard): released early it could not be shed again for the event's later
        # intervals, which would then fall short. The divisible devices give back instead.
        if self.until is not None and self.policy.min_rest_min > 0:
            return 0.0
        return self.shed_power_kw if self.shed else 0.0

    def shift(self, delta_kw: float, view: DeviceView, now: datetime) -> list[Command]:
        if delta_kw < 0 and not self.shed:
            self.shed_power_kw = view.values.get("power_kw", 0.0)
            self._set_shed(True, now)
            return [Command(self.id, "shed", 1.0, "closed_loop")]
        if delta_kw > 0 and self.shed:
            self._set_shed(False, now)
            return [Command(self.id, "shed", 0.0, "closed_loop")]
        return []

    def plan_input(self, view: DeviceView, now: datetime) -> ShedState:
        shed_h = 0.0
        if self.shed and self.shed_since is not None:
            shed_h = (now - self.shed_since).total_seconds() / 3600
        rest_h = 0.0
        if not self.shed and self.released_at is not None:
            left = timedelta(minutes=self.policy.min_rest_min) - (now - self.released_at)
            rest_h = max(0.0, left.total_seconds() / 3600)
        return ShedState(shed_h, rest_h)


class LoadKind(KindPlugin):
    kind = Kind.curtailable_load
    wire_kind = "curtailable_load"
    params = CurtailableLoadParams
    report_role = ReportRole.device
    direction = Direction.consumes
    sections = {  # noqa: RUF012 - a ClassVar of the base
        field: "only sheddable loads (curtailable_load) have shedding terms"
        for field in ("shed_cost_per_kwh", "max_shed_min", "min_rest_min", "dr_only")
    }

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
        policy = ShedPolicy.of(device.config)
        state = plan_input if isinstance(plan_input, ShedState) else ShedState(0.0, 0.0)
        max_h = policy.max_shed_min / 60
        return [
            CurtailableLoadAsset(
                id=device.id,
                load_kw=load,
                max_shed_kw=max(load),
                max_duration_h=max_h,
                min_rest_h=policy.min_rest_min / 60,
                cost=ctx.costs.load_shed_cost
                if policy.cost_per_kwh is None
                else policy.cost_per_kwh,
                dr_only=policy.dr_only,
                shed_h=min(state.shed_h, max_h),
                rest_left_h=state.rest_left_h,
            )
        ]

    def forecast(
        self, device: Device, model: Any, env: Environment, mids: list[datetime]
    ) -> DeviceSeries:
        lp = model
        assert isinstance(lp, CurtailableLoadParams)
        return DeviceSeries(own_kw=[max(0.0, env.shape(lp.power_kw, t)) for t in mids])


register(LoadKind())
