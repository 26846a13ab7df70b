"""EV charger (one-way): a power limit; the floor keeps the departure promise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from building.params import EvChargerParams
from devices.profile import Kind
from optimiser import EvSession
from optimiser.inputs import Asset
from vpp.control.flex import Flex, draws_up_to
from vpp.control.types import Command, DeviceView, PlanStep
from vpp.kinds.base import Direction, KindPlugin, PlanContext, ReportRole
from vpp.kinds.registry import register
from vpp.measure.ev import counter_increase_kwh
from vpp.site import Device

DEFAULT_EV_NEED_KWH = 20.0
"""A plugged car's energy need (kWh) where the site file gives the charger no EV defaults."""
DEFAULT_EV_STAY_H = 9.0
"""... and its stay (hours)."""
AFTER_EVENT_SHARE = 0.5
"""The share of its rating a charger is counted on to deliver after an event (kW ÷ kW)."""


@dataclass(frozen=True)
class EvSessionEstimate:
    """A plugged car as the planner sees it, taken on the control loop (plain data: the
    solver may run in a worker thread): energy still needed (kWh), hours to departure, and
    the most the charger may draw now (kW)."""

    need_kwh: float
    left_h: float
    max_kw: float


@dataclass
class EvFlex(Flex):
    """EV charger: the knob is the power limit; the floor keeps the departure promise."""

    order: int = 1
    ceiling: bool = True
    plugged_since: datetime | None = None
    energy_at_plug_kwh: float = 0.0
    """The energy counter when the current car plugged in (kWh)."""
    received_kwh: float = 0.0
    """What the current car received: the counter's rises since it plugged in (kWh)."""
    _counter_kwh: float | None = None  # the counter's last reading

    def _track_counter(self, plugged: bool, counter: float | None, now: datetime) -> None:
        """Credit the car only its own energy (vpp.measure.ev): from the counter before it
        plugged in, a drop counting as a reset."""
        if not plugged:
            self.plugged_since = None
            if counter is not None:
                self._counter_kwh = counter
            return
        if self.plugged_since is None:
            self.plugged_since = now
            ev = self.device.config.ev
            if self._counter_kwh is None:  # plugged in before the agent's first reading
                cumulative = ev is not None and ev.session_counter == "cumulative"
                self._counter_kwh = (counter or 0.0) if cumulative else 0.0
            self.energy_at_plug_kwh, self.received_kwh = self._counter_kwh, 0.0
        if counter is not None:
            self.received_kwh += counter_increase_kwh([self._counter_kwh or 0.0, counter])
            self._counter_kwh = counter

    def session_estimate(self, view: DeviceView, now: datetime) -> tuple[float, float]:
        """(energy still needed kWh, hours to departure) from the site's EV defaults."""
        ev = self.device.config.ev
        plugged = view.values.get("plugged", 0.0) >= 0.5
        self._track_counter(plugged, view.values.get("session_energy_kwh"), now)
        if not plugged or self.plugged_since is None:
            return 0.0, 0.0
        need = ev.energy_needed_kwh if ev else DEFAULT_EV_NEED_KWH
        stay_h = ev.departure_after_h if ev else DEFAULT_EV_STAY_H
        delivered = self.received_kwh
        left_h = stay_h - (now - self.plugged_since).total_seconds() / 3600
        return max(0.0, need - delivered), max(0.0, left_h)

    def plan_input(self, view: DeviceView, now: datetime) -> EvSessionEstimate | None:
        if view.values.get("plugged", 0.0) < 0.5:
            return None
        need, left_h = self.session_estimate(view, now)
        return EvSessionEstimate(need, left_h, self.max_kw(view))

    def max_kw(self, view: DeviceView) -> float:
        _, hi = self.limit("power_limit_kw", 0.0, 1e9)
        vmax = view.values.get("max_power_kw")
        return min(hi, vmax) if vmax is not None else hi

    def floor_kw(self, view: DeviceView, now: datetime) -> float:
        """Least power that still delivers the energy needed by departure (with 15 % margin).

        In an event, what the stay after the event can deliver (at `AFTER_EVENT_SHARE` of
        the charger's rating: the recovery ramps, the rebound is capped) is left to it: a car
        held at an even share of its need through the event spends the event's kW on energy
        it could have had after (issue 12: seed 9's six cars held 14 kW of its 79)."""
        need, left_h = self.session_estimate(view, now)
        if need <= 0:
            return 0.0
        max_kw = self.max_kw(view)
        if left_h <= 0.25:
            return max_kw
        even = min(max_kw, 1.15 * need / left_h)
        if self.until is None or now >= self.until:
            return even
        event_h = min(left_h, (self.until - now).total_seconds() / 3600)
        later_kwh = AFTER_EVENT_SHARE * max_kw * max(0.0, left_h - event_h - 0.25)
        return min(even, max(0.0, 1.15 * need - later_kwh) / event_h)

    def followed_kw(
        self, planned_kw: list[float], dt_h: float, state: object | None
    ) -> list[float]:
        """The plan held up to the floor (`floor_kw` outside an event) step by step as the car
        fills: the plan may leave a car idle in dear hours, but `follow_plan` charges it at
        its floor all the same (issue 12: a forecast baseline without the floor was 18-22 kW
        under what the site drew without the event)."""
        if not isinstance(state, EvSessionEstimate):
            return planned_kw
        need, left_h, out = state.need_kwh, state.left_h, []
        for planned in planned_kw:
            floor = state.max_kw if left_h <= 0.25 else 1.15 * need / max(left_h, 1e-9)
            # What the floor gave early, the plan's later steps no longer need (a re-plan
            # takes it off them): never more than the car still needs.
            kw = min(state.max_kw, max(planned, floor), need / dt_h)
            out.append(kw)
            need, left_h = max(0.0, need - kw * dt_h), left_h - dt_h
        return out

    def _set(self, kw: float, reason: str) -> list[Command]:
        self.command_kw = kw
        return [Command(self.id, "power_limit_kw", round(kw, 3), reason)]

    def follow_plan(self, view: DeviceView, plan: PlanStep, now: datetime) -> list[Command]:
        planned = plan.power_kw.get(self.id)
        kw = self.max_kw(view) if planned is None else planned
        kw = max(kw, self.floor_kw(view, now))
        return self._set(min(self.max_kw(view), kw), "plan")

    def room_down_kw(self, view: DeviceView, now: datetime) -> float:
        drawing = view.values.get("power_kw", 0.0)
        current = min(self.command_kw if self.command_kw is not None else drawing, drawing)
        return max(0.0, current - self.floor_kw(view, now))

    def room_up_kw(self, view: DeviceView, plan: PlanStep, now: datetime) -> float:
        if self.command_kw is not None and not draws_up_to(self.command_kw, view):
            return 0.0  # the car draws less than it may: a higher limit gives nothing back
        ceiling = plan.power_kw.get(self.id, self.max_kw(view))
        return max(0.0, min(ceiling, self.max_kw(view)) - (self.command_kw or 0.0))

    def shift(self, delta_kw: float, view: DeviceView, now: datetime) -> list[Command]:
        drawing = view.values.get("power_kw", 0.0)
        base = self.command_kw if self.command_kw is not None else drawing
        if delta_kw < 0:
            base = min(base, drawing)  # cutting a limit the car does not use sheds nothing
        kw = max(self.floor_kw(view, now), min(self.max_kw(view), base + delta_kw))
        return self._set(kw, "closed_loop")


class EvChargerKind(KindPlugin):
    kind = Kind.ev_charger
    wire_kind = "ev_charger"
    params = EvChargerParams
    telemetry_fields: ClassVar[Mapping[str, str]] = {
        "power_kw": "power_kw",
        "plugged": "plugged",
        "energy_kwh": "session_energy_kwh",
    }
    boolean_fields = frozenset({"plugged"})
    report_role = ReportRole.device
    direction = Direction.consumes  # one-way: it only charges
    rating_point = "power_limit_kw"
    sections: ClassVar[Mapping[str, str]] = {"ev": "only EV chargers have EV defaults"}

    def adapter(self, device: Device) -> Flex | None:
        return EvFlex(device)

    def assets(
        self,
        device: Device,
        view: DeviceView,
        model: Any,
        ctx: PlanContext,
        plan_input: object | None,
    ) -> list[Asset]:
        if not isinstance(plan_input, EvSessionEstimate) or plan_input.need_kwh <= 0:
            return []
        return [
            EvSession(
                id=device.id,
                arrival_step=0,
                departure_step=max(1, int(plan_input.left_h / ctx.grid.dt_h)),
                energy_kwh=plan_input.need_kwh,
                max_kw=plan_input.max_kw,
                efficiency=1.0,
            )
        ]


register(EvChargerKind())
