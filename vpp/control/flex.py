"""The flexibility adapter's base: each adapter turns one device into a kW knob the
dispatcher can turn. Each kind's own adapter lives with its plugin (vpp.kinds).

The dispatcher never branches on device kind: it asks adapters, in their `order`, how much
they can reduce or give back, and they answer within their guardrails (SoC reserve, EV
departure need, comfort band). Order (documented in docs/control.md):
battery (0), EV chargers (1), HVAC zones (2), curtailable loads (3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

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
    _limit_bounds: dict[str, tuple[float | None, float | None]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    excluded_reason: str = ""
    # The knob is a ceiling (a power limit, a shed coil): drawing less than told is following.
    ceiling: bool = False
    last_commands: dict[str, float] = field(default_factory=dict)
    # End of the event being served (set by the dispatcher each cycle; None outside one).
    until: datetime | None = None
    # After an event, given its power back in turn with the others that are (see
    # Dispatcher.stagger_release), not all at once.
    staggered_release: bool = False

    @cached_property
    def id(self) -> str:
        """The device's id (cached: a control cycle asks for it about 150 times)."""
        return self.device.id

    @property
    def priority(self) -> int:
        return self.device.config.priority

    def limit(self, point: str, lo: float, hi: float) -> tuple[float, float]:
        """The tighter of (lo, hi) and the site file's and the profile's limits for `point`."""
        bounds = self._limit_bounds.get(point)
        if bounds is None:  # the site file and the profile do not change: once per point
            site = self.device.config.limits.get(point)
            p = self.device.profile.points.get(point)
            los = [x for x in (site[0] if site else None, getattr(p, "min", None)) if x is not None]
            his = [x for x in (site[1] if site else None, getattr(p, "max", None)) if x is not None]
            bounds = self._limit_bounds[point] = (
                max(los) if los else None,
                min(his) if his else None,
            )
        if bounds[0] is not None:
            lo = max(lo, bounds[0])
        if bounds[1] is not None:
            hi = min(hi, bounds[1])
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

    def room_absorb_kw(self, view: DeviceView, now: datetime) -> float:
        """How many kW more than now it could draw, beyond its plan, to take up an export past
        the site's limit (≥ 0): a store of energy has it, a load does not."""
        return 0.0

    def shift(self, delta_kw: float, view: DeviceView, now: datetime) -> list[Command]:
        """Move consumption by `delta_kw` (negative = shed); the caller stays within room."""
        return []

    @property
    def shed_rank(self) -> float:
        """Among devices of one priority and kind, the cheaper to shed goes first (a load's
        `shed_cost_per_kwh`); 0 for the others."""
        return 0.0

    def guard(self, view: DeviceView, now: datetime) -> list[Command]:
        """Commands that a guardrail needs this cycle before anything else (e.g. a zone at
        the top of its comfort band), event or not."""
        return []

    def see_plan(self, plan: PlanStep) -> None:
        """The plan's step, each cycle before anything else (an adapter that budgets an
        event by the plan keeps what it needs of it)."""

    def release_at(self, when: datetime) -> None:
        """Give back earlier shedding no sooner than `when` (staggered release)."""

    def followed_kw(
        self, planned_kw: list[float], dt_h: float, state: object | None
    ) -> list[float]:
        """What this device draws per step (kW) while it follows `planned_kw` outside an
        event, from its planner state `state` (`plan_input`): the plan itself, unless the
        adapter holds a floor of its own under it."""
        return planned_kw

    def plan_input(self, view: DeviceView, now: datetime) -> object | None:
        """What the planner needs of this device's live state, as plain data (taken on the
        control loop: the solver may run in another thread). None: nothing."""
        return None

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


def draws_up_to(limit_kw: float, view: DeviceView, tolerance_kw: float = 1.0) -> bool:
    """Whether a device with a power limit draws up to it (the limit is what holds it)."""
    drawing = view.values.get("power_kw")
    return drawing is None or drawing >= limit_kw - tolerance_kw
