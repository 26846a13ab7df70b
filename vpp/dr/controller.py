"""Demand response in the running agent: events → baseline → plan → opt-in → closed-loop
targets → recovery → reports → completed.

- Every planning period (aligned to the quarter hour) and at once on any event change, the
  site is re-planned; time stands still in replay while the solver runs; live, the solver
  runs in a worker thread so that the loop keeps answering the grid.
- A new event's baseline is fixed when it is first planned: X-of-Y from stored history when
  enough like days exist, else the forecast of the site without events (a plan made
  without them). It is kept in the store with the event.
- The dispatcher's target: baseline − value (curtail) or the cap; after the event a ramp
  from the last target, with HVAC zones released one by one.
- Partial reports at each interval end; the final report, then `completed`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from devices.clock import VirtualClock
from vpp.control.flex import EvFlex
from vpp.control.types import PlanStep, Snapshot, Target
from vpp.dr.events import EventManager
from vpp.dr.forecast import TwinForecast
from vpp.dr.planning import STEP, Plan, SitePlanner, expected_delivery, floor_step
from vpp.dr.reporting import Reporter
from vpp.grid.ledger import EventState
from vpp.grid.messages import Event
from vpp.grid.targets import step_target

if TYPE_CHECKING:
    from vpp.agent import Agent

log = structlog.get_logger(__name__)


class Recovery:
    """After an event: the import ceiling rises from `level_kw` by `ramp` kW per minute."""

    def __init__(self, start: datetime, level_kw: float, ramp_kw_per_min: float, end_kw: float):
        self.start = start
        self.level_kw = level_kw
        self.ramp = ramp_kw_per_min
        self.end_kw = end_kw

    def ceiling(self, now: datetime) -> float:
        minutes = (now - self.start).total_seconds() / 60
        return self.level_kw + self.ramp * max(0.0, minutes)

    def over(self, now: datetime) -> bool:
        return self.ceiling(now) >= self.end_kw


class DrController:
    """Attaches DR to an agent: plan loop, targets, reports."""

    def __init__(
        self,
        agent: Agent,
        forecast: TwinForecast,
        *,
        opt_out_below: float = 0.5,
        strategy: str = "optimiser",
        solve_in_thread: bool | None = None,
    ) -> None:
        self.agent = agent
        self.site = agent.site
        self.clock = agent.clock
        self.strategy = strategy
        self.planner = SitePlanner(self.site, forecast)
        self.events = EventManager(agent.clock, agent.store, agent.link, self._on_event_change)
        self.reporter = Reporter(agent, self.events)
        self.opt_out_below = opt_out_below
        # Live, the solver runs in a worker thread so that the loop keeps answering the grid.
        # Pyomo's HiGHS interface swaps sys.stdout/sys.stderr for a temporary file while
        # HiGHS runs and closes it after: a logger that picked up the swapped stream would
        # fail later. structlog configured (vpp.log.configure_logging, as the CLI and the
        # bench do) binds its stream once, so the default is: a thread on the wall clock when
        # structlog is configured. Never on the virtual clock (time must not move meanwhile).
        if solve_in_thread is None:
            solve_in_thread = structlog.is_configured()
        self.solve_in_thread = solve_in_thread and not isinstance(agent.clock, VirtualClock)
        self.plan: Plan | None = None
        self.baselines: dict[str, dict[datetime, float]] = {}
        # Events whose baseline is made (or loaded): `baselines` may also hold the control
        # cycle's stand-in (the import at one instant) for an event not yet planned.
        self._baselined: set[str] = set()
        self._free_plan: Plan | None = None  # the latest plan made without events
        self._free_devices: frozenset[str] = frozenset()  # the devices that plan was made for
        self.recovery: Recovery | None = None
        self.last_target: Target | None = None
        self._replan = asyncio.Event()
        self.plans = 0
        for state in self.events.resumable():
            log.info("event_resumed", event_id=state.event_id, status=state.status)
            self.baselines[state.event_id] = self.reporter.stored_baseline(state.event_id)
            if self.baselines[state.event_id]:
                self._baselined.add(state.event_id)
            self.reporter.resume(state.event)
        agent.plan_source = self.plan_step
        agent.target_source = self.target
        agent.replan_hooks.append(lambda _ids: self._replan.set())
        agent.cycle_hooks.append(self._after_snapshot)
        agent.extra_tasks += [self._inbox_loop, self._plan_loop]

    # -- events ---------------------------------------------------------------------------

    def _on_event_change(self, event_id: str) -> None:
        self._replan.set()
        state = self.events.states.get(event_id)
        if state is not None and not state.dispatchable and self.last_target is not None:
            if self.last_target.event_id == event_id:
                self._start_recovery(self.clock.now())
        self.agent.request_cycle()

    async def _inbox_loop(self) -> None:
        while True:
            msg = await self.agent.link.receive()
            self.events.handle(msg.payload)

    # -- planning -------------------------------------------------------------------------

    def _ev_flex(self) -> dict[str, EvFlex]:
        return {a.id: a for a in self.agent.dispatcher.adapters if isinstance(a, EvFlex)}

    async def _solve(self, snap: Snapshot, events: list[Event]) -> Plan:
        excluded = set(self.agent.dispatcher.excluded)
        baselines: dict[datetime, float] = {}
        for ev in events:
            baselines.update(self.baselines.get(ev.event_id, {}))
        ev_flex = self._ev_flex()

        def solve() -> Plan:
            problem = self.planner.problem(snap, events, baselines, ev_flex, excluded)
            return self.planner.plan(problem, snap.ts)

        if not self.solve_in_thread:
            # Replay: solved in the loop's thread, so simulated time cannot move meanwhile.
            return solve()
        # Live: in a worker thread, so that the loop keeps answering while it solves (an
        # event arriving meanwhile gets `received` at once, not after the solve). Output to
        # fds 1 and 2 while HiGHS runs (about 0.1 s at 100 devices) goes to Pyomo's capture.
        return await asyncio.to_thread(solve)

    async def replan(self) -> None:
        """Plan now and answer the events it planned (see `_solve` for where it runs)."""
        snap = self.agent.snapshot()
        if snap.site_import_kw is None and not any(v.usable for v in snap.devices.values()):
            return  # nothing read yet: a plan would be blind
        live = [s for s in self.events.states.values() if s.live and not s.event.cancelled]
        plan_events = [s.event for s in live if s.status != "opt_out"]
        planned = {(s.event_id, s.modification) for s in live}
        new = [s for s in live if s.event_id not in self._baselined]
        if self.strategy != "optimiser":
            self._answer_without_plan(new)
            return
        # A control cycle asked for by the same event runs first (see _plan_loop).
        # The plan made without events serves again only in the same step and if it covers
        # every device usable now: one made before every device was first read (at start-up)
        # would leave them out of the baseline. A device gone since is left out at dispatch.
        planned_for = frozenset(d for d, v in snap.devices.items() if v.usable) - frozenset(
            self.agent.dispatcher.excluded
        )
        free = self._free_plan
        free_holds = (
            free is not None
            and floor_step(free.made_at) == floor_step(snap.ts)
            and planned_for <= self._free_devices
        )
        if new:
            # The site without events: its predicted import is the forecast baseline.
            base_plan = free if free is not None and free_holds else None
            if base_plan is None:
                base_plan = await self._solve(snap, [])
                self._free_plan, self._free_devices = base_plan, planned_for
            for s in new:
                self.baselines[s.event_id] = self.reporter.make_baseline(s.event, base_plan)
                self._baselined.add(s.event_id)
        if not plan_events and free is not None and free_holds:
            # The last event went (a cancel): the plan without events of this step still
            # holds; no solve, so the next event is not kept waiting.
            self.plan = free
        else:
            self.plan = await self._solve(snap, plan_events)
        self.plans += 1
        if not plan_events:
            self._free_plan, self._free_devices = self.plan, planned_for
        sched = self.plan.schedule
        log.info(
            "planned",
            status=sched.status,
            fallback=sched.fallback,
            events=len(plan_events),
            solve_s=round(sched.timings.solve_s, 3),
        )
        for s in self.events.awaiting_plan():
            if (s.event_id, s.modification) not in planned:
                continue  # arrived while solving: the next plan (already asked for) answers
            baseline = self.baselines.get(s.event_id, {})
            expected = expected_delivery(self.plan, s.event, baseline)
            asked = [iv.value for iv in s.event.intervals]
            if s.event.signal == "curtail_kw" and sum(expected) < self.opt_out_below * sum(asked):
                reason = (
                    f"the plan expects {sum(expected) / len(expected):.0f} kW of the "
                    f"{sum(asked) / len(asked):.0f} kW asked: not enough flexibility"
                )
                self.events.opt_out(s.event_id, reason, s.modification)
            else:
                self.events.opt_in(s.event_id, expected, s.modification)
            self.reporter.save_baseline(s.event_id, self.baselines.get(s.event_id, {}))

    def _answer_without_plan(self, new: list[EventState]) -> None:
        """`rules`: baseline from history, opt in to what is asked; `none`: opt out."""
        for s in new:
            self.baselines[s.event_id] = self.reporter.make_baseline(s.event, None)
            self._baselined.add(s.event_id)
        for s in self.events.awaiting_plan():
            if self.strategy == "none":
                self.events.opt_out(
                    s.event_id, "this site does not respond (strategy none)", s.modification
                )
            else:
                asked = [iv.value if s.event.signal != "price" else 0.0 for iv in s.event.intervals]
                self.events.opt_in(s.event_id, asked, s.modification)
            self.reporter.save_baseline(s.event_id, self.baselines.get(s.event_id, {}))

    async def _plan_loop(self) -> None:
        period = self.site.config.periods.plan_s
        await self._first_readings()
        await self.replan()
        while True:
            now = self.clock.now()
            nxt = floor_step(now, timedelta(seconds=period)) + timedelta(seconds=period)
            sleeper = asyncio.ensure_future(self.clock.sleep((nxt - now).total_seconds()))
            waker = asyncio.ensure_future(self._replan.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()
            self._replan.clear()
            # Let a control cycle requested by the same event run, and the answers leave,
            # before the solver blocks the loop.
            await self.agent.cycle_idle()
            await self.agent.link.flush()
            await self.replan()

    async def _first_readings(self) -> None:
        for _ in range(30):
            if self.agent.snapshot().site_import_kw is not None:
                return
            await self.clock.sleep(self.site.config.periods.poll_s)

    def plan_step(self, snap: Snapshot) -> PlanStep:
        if self.strategy != "optimiser" or self.plan is None:
            return PlanStep()
        return self.plan.step(snap.ts)

    # -- targets --------------------------------------------------------------------------

    def target(self, snap: Snapshot) -> Target | None:
        now = snap.ts
        limits = self.site.config.limits
        site_limit = Target(limits.import_kw, "site_limit")
        if self.strategy == "none":
            return site_limit
        period = timedelta(seconds=self.site.config.periods.control_s)
        st = step_target(self.events.dispatchable(), now, period)
        if st.signal is not None and st.value_kw is not None and st.event_id is not None:
            if st.signal == "curtail_kw":
                base = self.baselines.get(st.event_id, {}).get(floor_step(now))
                if base is None:
                    base = snap.site_import_kw or 0.0
                    self.baselines.setdefault(st.event_id, {})[floor_step(now)] = base
                value = base - st.value_kw / max(st.coverage, 1e-9)
            else:
                value = st.value_kw
            self.recovery = None
            ev = self.events.states[st.event_id].event
            target = Target(
                min(value, limits.import_kw), f"event:{st.event_id}", st.event_id, until=ev.end
            )
            self.last_target = target
            return target
        if self.last_target is not None and self.recovery is None:
            self._start_recovery(now)
        if self.recovery is not None:
            if self.recovery.over(now):
                log.info("recovery_over")
                self.recovery = None
            else:
                return Target(min(self.recovery.ceiling(now), limits.import_kw), "recovery")
        return site_limit

    def _start_recovery(self, now: datetime) -> None:
        limits = self.site.config.limits
        level = self.last_target.import_max_kw if self.last_target else limits.import_kw
        end = limits.rebound_cap_kw or limits.import_kw
        self.recovery = Recovery(now, level, limits.recovery_ramp_kw_per_min, end)
        self.agent.dispatcher.stagger_release(now, limits.zone_release_stagger_s)
        self.last_target = None
        log.info("recovery_started", level_kw=round(level, 1), ramp=limits.recovery_ramp_kw_per_min)

    # -- per cycle ------------------------------------------------------------------------

    async def _after_snapshot(self, snap: Snapshot) -> None:
        if self.agent.dispatcher.last is not None:
            self.reporter.note_cycle(*self.agent.dispatcher.last)
        self.reporter.tick(snap.ts, self.baselines)
        if self.plan is not None and snap.ts - self.plan.made_at > 2 * STEP:
            self._replan.set()  # a missed planning period must not leave a stale plan
