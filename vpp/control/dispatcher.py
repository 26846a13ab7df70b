"""The dispatcher: one fixed-phase control cycle turns a snapshot, the plan and a target into
setpoints.

Outside a binding target, devices follow the plan. Inside an event window (or recovery, or
when the site limit binds) the loop closes on the measured site import: the error against
the target (minus a safety margin) is shed in adapter order (battery, EV, HVAC, loads) and
given back in reverse order, each within its guardrails. A device that is offline or does not
follow its setpoint is left out; the loop's error moves its share to the others at once, and a
re-plan is asked for.

The loop never aims below the site's export limit (`limits.export_kw`, lowered while an
export-cap event is active; a site exporting near that cap closes the loop too): a 0 kW cap, or a
curtailment larger than the load, brings the import down to zero (or to the allowed export),
not past it. The meter lags the commands by a cycle or two, so shedding is also bounded by what
the commands already sent but not yet seen on the devices' readings will take off; and a site
exporting past the limit gets power given back at once, whatever the deadband, and what
giving back cannot take up a device with room to draw beyond its plan (a battery) soaks up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from vpp.control.flex import Flex
from vpp.control.types import (
    Command,
    CycleResult,
    DeviceView,
    PlanStep,
    Snapshot,
    Target,
    TargetSource,
)
from vpp.kinds import adapter_for
from vpp.site import Site

log = structlog.get_logger(__name__)

NOT_FOLLOWING = "not following its setpoint"


class DispatchView(Protocol):
    """What controllers see of the dispatcher: who is left out, the latest cycle's outcome,
    the live state the planner needs (plain data); and the one action they take on it
    (devices released one by one after an event)."""

    @property
    def excluded(self) -> dict[str, str]: ...

    @property
    def last(self) -> tuple[datetime, CycleResult] | None: ...

    def stagger_release(self, start: datetime, stagger_s: float) -> None: ...

    def plan_inputs(self, snap: Snapshot) -> dict[str, object]: ...

    def followed_import_kw(
        self,
        power_kw: Mapping[str, Sequence[float]],
        import_kw: Sequence[float],
        dt_h: float,
        plan_inputs: Mapping[str, object],
    ) -> list[float]: ...


class Dispatcher:
    """Keeps the adapters' state between cycles; `cycle()` is pure apart from that state."""

    def __init__(
        self,
        site: Site,
        *,
        margin_frac: float = 0.03,
        margin_kw: float = 3.0,
        deadband_kw: float = 4.0,
        readmit_s: float = 300.0,
        gain: float = 0.6,
        export_margin_kw: float = 1.0,
    ) -> None:
        self.site = site
        # The most the site may export (kW ≥ 0), and how far above that floor the loop aims.
        self.export_kw = site.config.limits.export_kw
        self.export_margin_kw = export_margin_kw
        adapters = [a for d in site.devices if (a := adapter_for(d)) is not None]
        # The site file's `priority` decides (lower sheds first); the kind's order breaks ties.
        # A load's shed cost orders loads of one priority (the cheapest lost service first).
        self.adapters: list[Flex] = sorted(
            adapters, key=lambda a: (a.priority, a.order, a.shed_rank, a.id)
        )
        self.margin_frac = margin_frac
        self.margin_kw = margin_kw
        self.deadband_kw = deadband_kw
        self._closed_loop = False
        self._excluded: dict[str, str] = {}
        self._excluded_at: dict[str, datetime] = {}
        self.readmit_s = readmit_s
        self.gain = gain
        self.last: tuple[datetime, CycleResult] | None = None  # the latest cycle's outcome

    @property
    def excluded(self) -> dict[str, str]:
        """Devices left out of control, with the reason."""
        return dict(self._excluded)

    def stagger_release(self, start: datetime, stagger_s: float) -> None:
        """After an event, give the devices that release in turn (the zones) their power back
        one at a time, `stagger_s` apart, in adapter order."""
        staggered = [a for a in self.adapters if a.staggered_release]
        for i, a in enumerate(staggered):
            a.release_at(start + timedelta(seconds=i * stagger_s))

    def plan_inputs(self, snap: Snapshot) -> dict[str, object]:
        """Per device in control, what the planner needs of its live state (plain data)."""
        out: dict[str, object] = {}
        for a in self.adapters:
            view = snap.devices.get(a.id)
            if view is None or not view.usable or a.id in self._excluded:
                continue
            value = a.plan_input(view, snap.ts)
            if value is not None:
                out[a.id] = value
        return out

    def followed_import_kw(
        self,
        power_kw: Mapping[str, Sequence[float]],
        import_kw: Sequence[float],
        dt_h: float,
        plan_inputs: Mapping[str, object],
    ) -> list[float]:
        """The site import (kW per step) while the devices follow a plan outside events:
        the plan's `import_kw`, plus what each adapter draws beyond its planned
        `power_kw` (`Flex.followed_kw`, from the `plan_inputs` the plan was made with)."""
        out = list(import_kw)
        for a in self.adapters:
            planned = power_kw.get(a.id)
            if planned is None:
                continue
            followed = a.followed_kw(list(planned), dt_h, plan_inputs.get(a.id))
            for k, (f, p) in enumerate(zip(followed, planned, strict=True)):
                out[k] += f - p
        return out

    def _usable(self, snap: Snapshot) -> tuple[list[tuple[Flex, DeviceView]], list[str], bool]:
        usable: list[tuple[Flex, DeviceView]] = []
        newly: list[str] = []
        for a in self.adapters:
            view = snap.devices.get(a.id)
            reason = ""
            if view is not None and not view.usable and view.starting:
                continue  # starting up: nothing known yet, nothing to report
            if a.id in self._excluded and self._excluded[a.id] == NOT_FOLLOWING:
                since = self._excluded_at.get(a.id, snap.ts)
                if (snap.ts - since).total_seconds() >= self.readmit_s:
                    # Give it another chance: a device that recovered must not stay out.
                    a.follow_misses = 0
                    a.command_kw = None
                    del self._excluded[a.id]
                    log.info("device_readmitted", device_id=a.id)
            if view is None or not view.usable:
                reason = f"offline: {view.reason if view else 'no reading'}"
            elif a.id in self._excluded and self._excluded[a.id] == NOT_FOLLOWING:
                reason = NOT_FOLLOWING
            elif not a.check_following(view):
                reason = NOT_FOLLOWING
            if reason:
                if a.id not in self._excluded:
                    newly.append(a.id)
                    self._excluded_at[a.id] = snap.ts
                    log.warning("device_left_out", device_id=a.id, reason=reason)
                self._excluded[a.id] = reason
                continue
            if a.id in self._excluded:
                log.info("device_back_in", device_id=a.id)
                del self._excluded[a.id]
                a.follow_misses = 0
            assert view is not None
            usable.append((a, view))
        return usable, newly, bool(newly)

    def cycle(self, snap: Snapshot, plan: PlanStep, target: Target | None) -> CycleResult:
        """Decide this cycle's setpoints."""
        usable, newly, replan = self._usable(snap)
        now = snap.ts
        before = {a.id: a.command_kw for a in self.adapters}
        result = self._decide(snap, plan, target, usable, newly, replan)
        self.last = (now, result)
        for a in self.adapters:
            if a.command_kw != before[a.id]:
                a.commanded_ts = now
                a.prev_command_kw = before[a.id]
        return result

    def _decide(
        self,
        snap: Snapshot,
        plan: PlanStep,
        target: Target | None,
        usable: list[tuple[Flex, DeviceView]],
        newly: list[str],
        replan: bool,
    ) -> CycleResult:
        now = snap.ts
        commands: list[Command] = []
        for a, view in usable:
            a.see_plan(plan)
            commands += a.guard(view, now)
        measured = snap.site_import_kw
        export_kw = self.export_limit_kw(target)
        binding = target is not None and (
            target.source is not TargetSource.SITE_LIMIT
            or (measured is not None and measured > target.import_max_kw - self.margin_kw)
            or (
                target.export_max_kw is not None
                and measured is not None
                and measured < self._export_release_kw(export_kw)
            )
        )
        if target is None or not binding or measured is None:
            if self._closed_loop:
                log.info("closed_loop_off")
            self._closed_loop = False
            for a, view in usable:
                commands += a.follow_plan(view, plan, now)
            return CycleResult(commands, target, 0.0, newly, replan)

        if not self._closed_loop:
            # Entering: start from the plan (which already accounts for the event).
            log.info("closed_loop_on", target_kw=target.import_max_kw, source=target.label)
            self._closed_loop = True
            for a, view in usable:
                commands += a.follow_plan(view, plan, now)
        for a, _view in usable:
            a.until = target.until
        # The import floor: the export limit's, raised by an import target's. A target aims at
        # the target itself (ceiling = floor) and tolerates half the deadband either way.
        floor = -export_kw + self.export_margin_kw
        tolerance = 0.0
        if target.import_min_kw is not None:
            floor = max(floor, target.import_min_kw)
            tolerance = self.deadband_kw / 2
        margin = max(self.margin_kw, self.margin_frac * target.import_max_kw)
        aim = max(target.import_max_kw - margin, floor)
        error = measured - aim
        # Less than the whole error each cycle: device readings lag the meter, and a
        # deadbeat step on stale readings overshoots and rings.
        pending = self._pending_kw(usable)
        low = measured < -export_kw or (
            target.import_min_kw is not None and measured < target.import_min_kw - tolerance
        )
        if error > tolerance and error + pending > 0:
            # Only what the commands sent but not yet seen on the devices (the plan's, when
            # entering) will not take off: shedding the whole error on top of them overshot
            # (the loop aims at the request, not at the most it can shed). And never past the
            # export floor.
            headroom = max(0.0, measured + pending - floor)
            want = self.gain * (error + pending)
            shed, unmet = self._shed(min(want, headroom), usable, now)
            commands += shed
            if unmet > 1e-6:
                # Nothing left to turn: the whole error (not just this cycle's share) is unmet.
                return CycleResult(
                    commands, target, error, newly, replan, error, tuple(sorted(self._excluded))
                )
        elif error < -self.deadband_kw or low:
            # Exporting past the limit (or importing under a target) is corrected at once,
            # inside the deadband too.
            surplus = -error if error > -self.deadband_kw else -error - self.deadband_kw / 2
            commands += self._give_back(self.gain * surplus, surplus, usable, plan, now)
            if low:
                # More export (or less import) than the plan foresaw (PV above its forecast,
                # a target above the plan): what giving back cannot take up, devices that can
                # draw beyond their plan soak up.
                over = floor - measured - self._pending_up_kw(usable)
                commands += self._absorb(self.gain * over, usable, now)
        return CycleResult(commands, target, error, newly, replan)

    def _export_release_kw(self, export_kw: float) -> float:
        """Under an export cap the loop closes when the site's import falls to within the
        deadband of the cap's floor, and opens again only once the site no longer exports (a
        battery soaking up PV beyond its plan would otherwise drop back to the plan, and the
        export past the cap, every other cycle)."""
        near = -export_kw + self.export_margin_kw + self.deadband_kw
        return max(near, 0.0) + self.deadband_kw if self._closed_loop else near

    def export_limit_kw(self, target: Target | None) -> float:
        """The most the site may export this cycle (kW ≥ 0): `limits.export_kw`, lowered by
        an export-cap event's ceiling."""
        if target is None or target.export_max_kw is None:
            return self.export_kw
        return max(0.0, min(self.export_kw, target.export_max_kw))

    @staticmethod
    def _pending_up_kw(usable: list[tuple[Flex, DeviceView]]) -> float:
        """kW (≥ 0) that setpoints already sent will still add to the site's import (a
        ceiling above what a device draws adds nothing)."""
        pending = 0.0
        for a, view in usable:
            if a.ceiling:
                continue
            measured = a.measured_kw(view)
            if a.command_kw is not None and measured is not None:
                pending += max(0.0, a.command_kw - measured)
        return pending

    def _absorb(
        self, kw: float, usable: list[tuple[Flex, DeviceView]], now: datetime
    ) -> list[Command]:
        """Commands that raise consumption by up to `kw` beyond the plan, in shedding order."""
        out: list[Command] = []
        left = kw
        for a, view in usable:
            if left <= 0:
                break
            room = a.room_absorb_kw(view, now)
            if room <= 0:
                continue
            step = min(room, left)
            out += a.shift(step, view, now)
            left -= step
        return out

    @staticmethod
    def _pending_kw(usable: list[tuple[Flex, DeviceView]]) -> float:
        """kW (≤ 0) that commands already sent will still take off the site's import: each
        device told to draw less than its latest reading shows."""
        pending = 0.0
        for a, view in usable:
            measured = a.measured_kw(view)
            if a.command_kw is not None and measured is not None:
                pending += min(0.0, a.command_kw - measured)
        return pending

    def _shed(
        self, kw: float, usable: list[tuple[Flex, DeviceView]], now: datetime
    ) -> tuple[list[Command], float]:
        """Commands that shed up to `kw` in order, and the kW no device had room for."""
        out: list[Command] = []
        left = kw
        for a, view in usable:
            if left <= 0:
                break
            room = a.room_down_kw(view, now)
            if room <= 0:
                continue
            step = min(room, left)
            out += a.shift(-step, view, now)
            left -= step
        return out, max(0.0, left)

    def _give_back(
        self,
        kw: float,
        surplus_kw: float,
        usable: list[tuple[Flex, DeviceView]],
        plan: PlanStep,
        now: datetime,
    ) -> list[Command]:
        out: list[Command] = []
        left = kw
        whole = surplus_kw  # what all-or-nothing loads may take: the whole surplus, once
        for a, view in reversed(usable):
            if left <= 0:
                break
            room = a.room_up_kw(view, plan, now)
            if room <= 0:
                continue
            if not a.divisible:
                # An all-or-nothing load comes back only when it fits in the surplus with the
                # deadband to spare; otherwise it would be shed again next cycle.
                if room > whole - self.deadband_kw:
                    continue
                whole -= room
            step = min(room, left) if a.divisible else room
            out += a.shift(step, view, now)
            left -= step
        return out
