"""Flexibility adapters: each turns one device into a kW knob the dispatcher can turn.

The dispatcher never branches on device kind: it asks adapters, in their `order`, how much
they can reduce or give back, and they answer within their guardrails (SoC reserve, EV
departure need, comfort band). Order (documented in docs/control.md):
battery (0), EV chargers (1), HVAC zones (2), curtailable loads (3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from devices.profile import Kind
from vpp.control.types import Command, DeviceView, PlanStep
from vpp.site import Device

# A device whose measured power stays this far from what it was told is "not following".
FOLLOW_TOLERANCE_KW = 3.0
FOLLOW_TOLERANCE_FRAC = 0.15


@dataclass
class Flex:
    """Base adapter: state is the knob's current setting in kW (consumption positive)."""

    device: Device
    order: int = 9
    divisible: bool = True
    command_kw: float | None = None
    prev_command_kw: float | None = None
    commanded_ts: datetime | None = None
    checked_ts: datetime | None = None
    follow_misses: int = 0
    excluded_reason: str = ""
    # The knob is a ceiling (a power limit, a shed coil): drawing less than told is following.
    ceiling: bool = False
    last_commands: dict[str, float] = field(default_factory=dict)
    # End of the event being served (set by the dispatcher each cycle; None outside one).
    until: datetime | None = None

    @property
    def id(self) -> str:
        return self.device.id

    @property
    def priority(self) -> int:
        return self.device.config.priority

    def limit(self, point: str, lo: float, hi: float) -> tuple[float, float]:
        """The tighter of (lo, hi) and the site file's limits for `point`."""
        site = self.device.config.limits.get(point)
        p = self.device.profile.points.get(point)
        pmin = getattr(p, "min", None)
        pmax = getattr(p, "max", None)
        lo = max(lo, site[0] if site else lo, pmin if pmin is not None else lo)
        hi = min(hi, site[1] if site else hi, pmax if pmax is not None else hi)
        return lo, max(lo, hi)

    # -- the knob -------------------------------------------------------------------------

    def follow_plan(self, view: DeviceView, plan: PlanStep, now: datetime) -> list[Command]:
        """Commands that carry out the plan for this step (no event correction)."""
        return []

    def room_down_kw(self, view: DeviceView, now: datetime) -> float:
        """How many kW more this device could shed right now (≥ 0)."""
        return 0.0

    def room_up_kw(self, view: DeviceView, plan: PlanStep, now: datetime) -> float:
        """How many kW of earlier shedding it could give back (≥ 0), up to the plan."""
        return 0.0

    def shift(self, delta_kw: float, view: DeviceView, now: datetime) -> list[Command]:
        """Move consumption by `delta_kw` (negative = shed); the caller stays within room."""
        return []

    def measured_kw(self, view: DeviceView) -> float | None:
        v = view.values.get("power_kw")
        return None if v is None else float(v)

    def check_following(self, view: DeviceView) -> bool:
        """False once measured power has missed the command in two fresh readings in a row
        (readings taken after the command was written, each counted once)."""
        fresh = (
            self.command_kw is not None
            and view.read_ts is not None
            and (self.commanded_ts is None or view.read_ts > self.commanded_ts)
            and view.read_ts != self.checked_ts
        )
        measured = self.measured_kw(view)
        if not fresh or measured is None or self.command_kw is None:
            return self.follow_misses < 2
        self.checked_ts = view.read_ts
        # A reading may still show the previous command (the device applies a new one at its
        # next step): near either command counts as following.
        targets = [self.command_kw]
        if self.prev_command_kw is not None:
            targets.append(self.prev_command_kw)
        tol = max(FOLLOW_TOLERANCE_KW, FOLLOW_TOLERANCE_FRAC * abs(self.command_kw))
        lo, hi = min(targets) - tol, max(targets) + tol
        if self.ceiling:
            lo = -float("inf")
        self.follow_misses = self.follow_misses + 1 if not lo <= measured <= hi else 0
        return self.follow_misses < 2


def _limited(limit_kw: float, view: DeviceView, tolerance_kw: float = 1.0) -> bool:
    """Whether a device with a power limit draws up to it (the limit is what holds it)."""
    drawing = view.values.get("power_kw")
    return drawing is None or drawing >= limit_kw - tolerance_kw


@dataclass
class BatteryFlex(Flex):
    """Battery: the knob is the power setpoint (+ charge, − discharge)."""

    order: int = 0
    soc_margin_pct: float = 1.0

    def _soc_max_pct(self) -> float:
        # The battery's own upper SoC limit (from its model in the site file), if known.
        return float((self.device.config.sim or {}).get("soc_max_pct", 100.0))

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
        return max(0.0, (soc - reserve) / 100 * cap / hours)

    def room_down_kw(self, view: DeviceView, now: datetime) -> float:
        lo, _ = self._bounds(view)
        # The loop's first resort, but not at a rate that empties the battery before the
        # event ends: the rest of the event would then fall on loads that cannot make it up.
        rate = self.sustainable_kw(view, now)
        if rate is not None:
            lo = max(lo, min(-rate, self.command_kw or 0.0))
        return max(0.0, (self.command_kw or 0.0) - lo)

    def room_up_kw(self, view: DeviceView, plan: PlanStep, now: datetime) -> float:
        _, hi = self._bounds(view)
        ceiling = min(hi, plan.power_kw.get(self.id, 0.0))
        return max(0.0, ceiling - (self.command_kw or 0.0))

    def shift(self, delta_kw: float, view: DeviceView, now: datetime) -> list[Command]:
        lo, hi = self._bounds(view)
        return self._set(min(hi, max(lo, (self.command_kw or 0.0) + delta_kw)), "closed_loop")


@dataclass
class EvFlex(Flex):
    """EV charger: the knob is the power limit; the floor keeps the departure promise."""

    order: int = 1
    ceiling: bool = True
    plugged_since: datetime | None = None
    energy_at_plug_kwh: float = 0.0

    def session_estimate(self, view: DeviceView, now: datetime) -> tuple[float, float]:
        """(energy still needed kWh, hours to departure) from the site's EV defaults."""
        ev = self.device.config.ev
        plugged = view.values.get("plugged", 0.0) >= 0.5
        if not plugged:
            self.plugged_since = None
            return 0.0, 0.0
        if self.plugged_since is None:
            self.plugged_since = now
        need = ev.energy_needed_kwh if ev else 20.0
        stay_h = ev.departure_after_h if ev else 9.0
        delivered = view.values.get("session_energy_kwh", 0.0)
        left_h = stay_h - (now - self.plugged_since).total_seconds() / 3600
        return max(0.0, need - delivered), max(0.0, left_h)

    def max_kw(self, view: DeviceView) -> float:
        _, hi = self.limit("power_limit_kw", 0.0, 1e9)
        vmax = view.values.get("max_power_kw")
        return min(hi, vmax) if vmax is not None else hi

    def floor_kw(self, view: DeviceView, now: datetime) -> float:
        """Least power that still delivers the energy needed by departure (with 15 % margin)."""
        need, left_h = self.session_estimate(view, now)
        if need <= 0:
            return 0.0
        if left_h <= 0.25:
            return self.max_kw(view)
        return min(self.max_kw(view), 1.15 * need / left_h)

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
        if self.command_kw is not None and not _limited(self.command_kw, view):
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


@dataclass
class ZoneFlex(Flex):
    """HVAC zone: the knob is the unit's power limit; the setpoint follows the plan within the
    comfort band, and a zone at the top of its band is given power back at once."""

    order: int = 2
    ceiling: bool = True
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
        if not _limited(self.command_kw, view):
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

    def comfort_guard(self, view: DeviceView) -> list[Command]:
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


ADAPTERS: dict[Kind, type[Flex]] = {
    Kind.battery: BatteryFlex,
    Kind.ev_charger: EvFlex,
    Kind.hvac: ZoneFlex,
    Kind.curtailable_load: LoadFlex,
}


def adapter_for(device: Device) -> Flex | None:
    """The adapter of a controllable device (meters and PV are not knobs here)."""
    cls = ADAPTERS.get(device.kind)
    return cls(device) if cls else None
