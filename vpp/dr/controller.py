"""Demand response in the running agent: events → baseline → plan → opt-in → closed-loop
targets → recovery → reports → completed.

- Every planning period (aligned to the quarter hour) and at once on any event change, the
  site is re-planned; time stands still in replay while the solver runs; live, the solver
  runs in a worker thread so that the loop keeps answering the grid.
- A new event's baseline is fixed when it is first planned: X-of-Y from stored history when
  enough like days exist, else the forecast of the site without events (a plan made
  without them). It is kept in the store with the event.
- Its proposals to the arbiter (vpp.control.arbiter): baseline − value (curtail) or the
  cap; after the event the recovery ramp from the last target, with HVAC zones released one
  by one.
- It is a vpp.control.controller.Controller: the composition root (vpp.service) builds it
  with its collaborators and hands it to the agent.
- Partial reports at each interval end; the final report, then `completed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog

from devices.clock import Clock, VirtualClock
from vpp.control.arbiter import Proposal
from vpp.control.dispatcher import DispatchView
from vpp.control.recovery import Recovery
from vpp.control.strategy import OptIn, OptOut, Strategy
from vpp.control.types import PlanStep, Snapshot, Target, TargetSource
from vpp.dr.delivery_record import confidence_factor
from vpp.dr.events import EventManager
from vpp.dr.forecast import TwinForecast
from vpp.dr.offer_service import OfferService
from vpp.dr.offers import OfferInputs, OfferMaker
from vpp.dr.planning import STEP, Plan, SitePlanner, expected_delivery, floor_step
from vpp.dr.reporting import Reporter
from vpp.grid.ledger import EventState
from vpp.grid.link import GridLink
from vpp.grid.messages import Event
from vpp.grid.offer_link import offer_channel
from vpp.grid.targets import StepTarget, step_target
from vpp.site import Site
from vpp.store.store import Store

log = structlog.get_logger(__name__)
T = TypeVar("T")

RECOVERY_WINDOW = timedelta(hours=2)
"""After an event, how long the recovery keeps the day's peak and the rebound cap (the
window in which the reports measure the rebound)."""


class DrController:
    """Demand response for one site: grid inbox, plan loop, target proposals, reports.

    `snapshot` reads the site now; `request_cycle` asks the agent for a control cycle at
    once and `cycle_idle` waits until none is waiting (vpp.agent.CycleRequests)."""

    def __init__(
        self,
        site: Site,
        clock: Clock,
        forecast: TwinForecast,
        *,
        store: Store,
        link: GridLink,
        dispatcher: DispatchView,
        snapshot: Callable[[], Snapshot],
        request_cycle: Callable[[], None],
        cycle_idle: Callable[[], Awaitable[None]],
        strategy: Strategy,
        solve_in_thread: bool | None = None,
        offers: bool = True,
    ) -> None:
        self.site = site
        self.clock = clock
        self.link = link
        self.dispatcher = dispatcher
        self.strategy = strategy
        self._snapshot = snapshot
        self._request_cycle = request_cycle
        self._cycle_idle = cycle_idle
        self.planner = SitePlanner(self.site, forecast)
        self.store = store
        # One solve at a time, the plans' and the offers' (each has its own models, but
        # Pyomo's HiGHS interface swaps sys.stdout while it runs: two threads would mix up).
        self._solver = asyncio.Lock()
        self.events = EventManager(clock, store, link, self._on_event_change)
        self.reporter = Reporter(site, clock, store, link, self.events, dispatcher)
        # Live, the solver runs in a worker thread so that the loop keeps answering the grid.
        # Pyomo's HiGHS interface swaps sys.stdout/sys.stderr for a temporary file while
        # HiGHS runs and closes it after: a logger that picked up the swapped stream would
        # fail later. structlog configured (vpp.log.configure_logging, as the CLI and the
        # bench do) binds its stream once, so the default is: a thread on the wall clock when
        # structlog is configured. Never on the virtual clock (time must not move meanwhile).
        if solve_in_thread is None:
            solve_in_thread = structlog.is_configured()
        self.solve_in_thread = solve_in_thread and not isinstance(clock, VirtualClock)
        self.plan: Plan | None = None
        self.baselines: dict[str, dict[datetime, float]] = {}
        # Events whose baseline is made (or loaded): `baselines` may also hold the control
        # cycle's stand-in (the import at one instant) for an event not yet planned.
        self._baselined: set[str] = set()
        self._free_plan: Plan | None = None  # the latest plan made without events
        self._free_devices: frozenset[str] = frozenset()  # the devices that plan was made for
        self.recovery: Recovery | None = None
        self.last_target: Target | None = None
        self._day_peak: tuple[object, float] = (None, 0.0)  # (local date, kW) measured
        self._replan = asyncio.Event()
        self.plans = 0
        self.solve_s_total = 0.0
        """Seconds the solver took over every plan since start (the schedules' solve time)."""
        self.offers = self._offer_service(forecast) if offers else None
        """Flexibility offers (None: turned off, no link carries them, or no plans)."""
        for state in self.events.resumable():
            log.info("event_resumed", event_id=state.event_id, status=state.status)
            self.baselines[state.event_id] = self.reporter.stored_baseline(state.event_id)
            if self.baselines[state.event_id]:
                self._baselined.add(state.event_id)
            self.reporter.resume(state.event)

    def tasks(self) -> Sequence[Coroutine[Any, Any, None]]:
        """The grid inbox and the plan loop (and the offers, when on)."""
        offers = [self.offers.run()] if self.offers is not None else []
        return [self._inbox_loop(), self._plan_loop(), *offers]

    # -- offers ---------------------------------------------------------------------------

    def _offer_service(self, forecast: TwinForecast) -> OfferService | None:
        channel = offer_channel(self.link)
        if not self.site.config.grid.offers.enabled or channel is None or not self.strategy.plans:
            return None
        maker = OfferMaker(
            self.site,
            self.clock,
            forecast,
            run_solve=self.run_solve,
            baseline=lambda event, free: self.reporter.baseline_profile(event, free)[0],
        )
        return OfferService(self.site, self.clock, channel, maker, self._offer_inputs)

    def _offer_inputs(self) -> OfferInputs | None:
        """The site now, as the offer's solves need it (None before the first readings)."""
        snap = self._snapshot()
        if snap.site_import_kw is None and not any(v.usable for v in snap.devices.values()):
            return None
        live = [s for s in self.events.states.values() if s.live and not s.event.cancelled]
        planned = [s.event for s in live if s.status != "opt_out"]
        baselines: dict[datetime, float] = {}
        for ev in planned:
            baselines.update(self.baselines.get(ev.event_id, {}))
        return OfferInputs(
            snapshot=snap,
            plan_inputs=self.dispatcher.plan_inputs(snap),
            excluded=frozenset(self.dispatcher.excluded),
            day_peak_kw=self.day_peak_kw,
            events=tuple(planned),
            baselines=baselines,
            confidence=confidence_factor(self.store),
        )

    async def run_solve(self, solve: Callable[[], T]) -> T:
        """Run one solve where solves run (see `_solve`), one at a time."""
        async with self._solver:
            if not self.solve_in_thread:
                # Replay: solved in the loop's thread, so simulated time cannot move meanwhile.
                return solve()
            # Live: in a worker thread, so that the loop keeps answering while it solves (an
            # event arriving meanwhile gets `received` at once, not after the solve). Output
            # to fds 1 and 2 while HiGHS runs (about 0.1 s at 100 devices) goes to Pyomo's
            # capture.
            return await asyncio.to_thread(solve)

    def on_not_following(self, device_ids: list[str]) -> None:
        self._replan.set()

    def settlement_baseline_kw(self, now: datetime) -> float | None:
        return self.reporter.running_baseline_kw(now)

    # -- events ---------------------------------------------------------------------------

    def _on_event_change(self, event_id: str) -> None:
        self._replan.set()
        state = self.events.states.get(event_id)
        if state is not None and not state.dispatchable and self.last_target is not None:
            if self.last_target.event_id == event_id:
                self._start_recovery(self.clock.now())
        self._request_cycle()

    async def _inbox_loop(self) -> None:
        while True:
            msg = await self.link.receive()
            try:
                self.events.handle(msg.payload, likely_event=msg.likely_event, dropped=msg.dropped)
            except Exception:  # handle() answers every message; nothing may end this loop
                log.exception("grid_message_failed", origin=msg.origin)

    # -- planning -------------------------------------------------------------------------

    async def _solve(self, snap: Snapshot, events: list[Event]) -> Plan:
        excluded = set(self.dispatcher.excluded)
        baselines: dict[datetime, float] = {}
        for ev in events:
            baselines.update(self.baselines.get(ev.event_id, {}))
        # Taken here, on the loop: the solve may run in a worker thread, and sees plain data.
        plan_inputs = self.dispatcher.plan_inputs(snap)
        day_peak = self.day_peak_kw

        def solve() -> Plan:
            problem = self.planner.problem(
                snap, events, baselines, plan_inputs, excluded, day_peak_kw=day_peak
            )
            return self.planner.plan(problem, snap.ts)

        return await self.run_solve(solve)

    async def replan(self) -> None:
        """Plan now and answer the events it planned (see `_solve` for where it runs)."""
        snap = self._snapshot()
        if snap.site_import_kw is None and not any(v.usable for v in snap.devices.values()):
            return  # nothing read yet: a plan would be blind
        live = [s for s in self.events.states.values() if s.live and not s.event.cancelled]
        plan_events = [s.event for s in live if s.status != "opt_out"]
        planned = {(s.event_id, s.modification) for s in live}
        new = [s for s in live if s.event_id not in self._baselined]
        if not self.strategy.plans:
            self._answer_without_plan(new)
            return
        # A control cycle asked for by the same event runs first (see _plan_loop).
        # The plan made without events serves again only in the same step and if it covers
        # every device usable now: one made before every device was first read (at start-up)
        # would leave them out of the baseline. A device gone since is left out at dispatch.
        planned_for = frozenset(d for d, v in snap.devices.items() if v.usable) - frozenset(
            self.dispatcher.excluded
        )
        free = self._free_plan
        free_holds = (
            free is not None
            and floor_step(free.made_at) == floor_step(snap.ts)
            and planned_for <= self._free_devices
        )
        ahead = [
            s
            for s in live
            if s.event_id in self._baselined
            and s.status != "opt_out"
            and snap.ts < floor_step(s.event.start)
        ]
        if new or ahead:
            # The site without events: its predicted import, as the devices follow it, is
            # the forecast baseline.
            base_plan = free if free is not None and free_holds else None
            if base_plan is None:
                base_plan = await self._solve(snap, [])
                self._free_plan, self._free_devices = base_plan, planned_for
            forecast = self._as_followed(base_plan, snap)
            for s in new:
                self.baselines[s.event_id] = self.reporter.make_baseline(s.event, forecast)
                self._baselined.add(s.event_id)
            for s in ahead:
                # Until the event starts, what the site was not yet seen to draw (a car
                # plugged in since) joins its baseline; the state the event's own
                # preparation left (a zone pre-cooled, a battery kept) never lowers it.
                again, _ = self.reporter.baseline_profile(s.event, forecast)
                old = self.baselines[s.event_id]
                self.baselines[s.event_id] = {t: max(kw, old.get(t, kw)) for t, kw in again.items()}
                self.reporter.save_baseline(s.event_id, self.baselines[s.event_id])
        if not plan_events and free is not None and free_holds:
            # The last event went (a cancel): the plan without events of this step still
            # holds; no solve, so the next event is not kept waiting.
            self.plan = free
        else:
            self.plan = await self._solve(snap, plan_events)
        self.plans += 1
        self.solve_s_total += self.plan.schedule.timings.solve_s
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
            self._answer(s, self.strategy.answer(s.event, expected))
            self.reporter.save_baseline(s.event_id, self.baselines.get(s.event_id, {}))

    def _as_followed(self, plan: Plan, snap: Snapshot) -> Plan:
        """`plan` with its site import as the devices will draw it following the plan
        (`DispatchView.followed_import_kw`: an EV charger's floor under an idle plan)."""
        sched = plan.schedule
        followed = self.dispatcher.followed_import_kw(
            sched.power_kw,
            sched.site_import_kw,
            plan.grid.dt_h,
            self.dispatcher.plan_inputs(snap),
        )
        return replace(plan, schedule=replace(sched, site_import_kw=followed))

    def _answer_without_plan(self, new: list[EventState]) -> None:
        """A strategy that does not plan: baseline from history, the strategy's answer."""
        for s in new:
            self.baselines[s.event_id] = self.reporter.make_baseline(s.event, None)
            self._baselined.add(s.event_id)
        for s in self.events.awaiting_plan():
            self._answer(s, self.strategy.answer(s.event, None))
            self.reporter.save_baseline(s.event_id, self.baselines.get(s.event_id, {}))

    def _answer(self, s: EventState, answer: OptIn | OptOut) -> None:
        if isinstance(answer, OptOut):
            self.events.opt_out(s.event_id, answer.reason, s.modification)
        else:
            self.events.opt_in(s.event_id, list(answer.expected_kw), s.modification)

    async def _replan_guarded(self) -> None:
        """Re-plan; a failure (a bug, an input the planner cannot take) is logged and the
        last plan stays in force (the dispatcher's safety rules hold either way): no single
        reading may end the agent. The next period, or the next event, plans again."""
        try:
            await self.replan()
        except Exception:
            log.exception("plan_failed", kept="the last plan" if self.plan else "no plan")

    async def _plan_loop(self) -> None:
        period = self.site.config.periods.plan_s
        await self._first_readings()
        await self._replan_guarded()
        self._plan_period_done()
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
            await self._cycle_idle()
            await self.link.flush()
            await self._replan_guarded()
            if sleeper.done() and not sleeper.cancelled():
                self._plan_period_done()

    def _plan_period_done(self) -> None:
        """A plan period's plan is made: its offer follows (once per period, not per re-plan)."""
        if self.offers is not None:
            self.offers.plan_period_done()

    async def _first_readings(self) -> None:
        """Wait (bounded) for the meter and for every device's first poll: a plan made
        before a device was read leaves it out, and an event's baseline taken from that plan
        (fixed for the event) would miss its load. A device that never answers is planned
        without once its first poll has failed or the wait is over."""
        poll_s = self.site.config.periods.poll_s
        longest = max((d.config.poll_s or poll_s for d in self.site.devices), default=poll_s)
        for _ in range(max(30, int(2 * longest / poll_s) + 1)):
            snap = self._snapshot()
            if snap.site_import_kw is not None and not any(
                v.starting for v in snap.devices.values()
            ):
                return
            await self.clock.sleep(poll_s)

    def plan_step(self, snap: Snapshot) -> PlanStep:
        """The plan's step at `snap.ts` (empty without a plan or a planning strategy)."""
        if not self.strategy.plans or self.plan is None:
            return PlanStep()
        return self.plan.step(snap.ts)

    # -- targets --------------------------------------------------------------------------

    def proposals(self, snap: Snapshot) -> Sequence[Proposal]:
        """The event's target while one is dispatched (baseline − value for a curtailment,
        else the cap; an import target is both the ceiling and the floor), then the recovery
        ramp until it is over; nothing otherwise. An export-cap event adds its export ceiling
        beside them."""
        now = snap.ts
        period = timedelta(seconds=self.site.config.periods.control_s)
        st = step_target(self.events.dispatchable(), now, period)
        caps: list[Proposal] = []
        if st.export_cap_kw is not None and st.export_event_id is not None:
            until = self.events.states[st.export_event_id].event.end
            caps = [
                Proposal(
                    None,
                    TargetSource.EVENT,
                    st.export_event_id,
                    until=until,
                    export_max_kw=st.export_cap_kw,
                )
            ]
        return caps + self._import_proposals(snap, st)

    def _import_proposals(self, snap: Snapshot, st: StepTarget) -> list[Proposal]:
        now = snap.ts
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
            floor = value if st.signal == "import_target_kw" else None
            return [
                Proposal(value, TargetSource.EVENT, st.event_id, until=ev.end, import_min_kw=floor)
            ]
        if self.last_target is not None and self.recovery is None:
            self._start_recovery(now)
        if self.recovery is not None:
            if self.recovery.over(now):
                log.info("recovery_over")
                self.recovery = None
            else:
                return [self.recovery.proposal(now)]
        return []

    def on_target(self, target: Target) -> None:
        """The arbiter's decision: an event's target is where recovery will ramp from."""
        if target.source is TargetSource.EVENT:
            self.last_target = target

    @property
    def day_peak_kw(self) -> float:
        """The highest site import measured today (local day; kW, 0 before any reading)."""
        return self._day_peak[1]

    def _note_peak(self, snap: Snapshot) -> None:
        if snap.site_import_kw is None:
            return
        day = snap.ts.astimezone(self.site.tz).date()
        kw = (
            snap.site_import_kw
            if day != self._day_peak[0]
            else max(self._day_peak[1], snap.site_import_kw)
        )
        self._day_peak = (day, kw)

    def _start_recovery(self, now: datetime) -> None:
        limits = self.site.config.limits
        level = self.last_target.import_max_kw if self.last_target else limits.import_kw
        event_id = self.last_target.event_id if self.last_target else None
        baseline = self.baselines.get(event_id or "", {})
        peak = self.day_peak_kw
        cap = limits.rebound_cap_kw

        def hold(t: datetime) -> float:
            # Not a new peak for the day, unless the site without the event would set one.
            keep = max(peak, baseline.get(floor_step(t), 0.0))
            if keep <= 0.0:
                keep = limits.import_kw
            return keep if cap is None else min(cap, keep)

        self.recovery = Recovery(
            now, level, limits.recovery_ramp_kw_per_min, limits.import_kw,
            hold=hold, window=RECOVERY_WINDOW,
        )  # fmt: skip
        self.dispatcher.stagger_release(now, limits.zone_release_stagger_s)
        self.last_target = None
        log.info("recovery_started", level_kw=round(level, 1), ramp=limits.recovery_ramp_kw_per_min)

    # -- per cycle ------------------------------------------------------------------------

    def after_snapshot(self, snap: Snapshot) -> None:
        """Count the last cycle for the reports, publish reports due, keep the plan fresh."""
        self._note_peak(snap)
        if self.dispatcher.last is not None:
            self.reporter.note_cycle(*self.dispatcher.last)
        self.reporter.tick(snap.ts)
        if self.plan is not None and snap.ts - self.plan.made_at > 2 * STEP:
            self._replan.set()  # a missed planning period must not leave a stale plan
