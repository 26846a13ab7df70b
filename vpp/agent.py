"""The agent: one building's controller. It owns its tasks (an async context manager per
part) and runs them until asked to stop:

- the Poller reads every device on its period (devices.poller, through vpp.drivers);
- the grid link (vpp.grid.link) keeps status, brings events, sends telemetry, responses and
  reports;
- the control cycle (fixed phase, `periods.control_s`) snapshots, asks the controller (the
  DR controller, vpp.dr) for its plan step and proposals, lets the arbiter decide the
  target, dispatches and writes;
- health changes, commands and down-sampled telemetry go to the store.

Its parts come through the constructor: vpp.service.site_agent puts them together.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta

import structlog

from devices.clock import Clock
from vpp.control.arbiter import Arbiter
from vpp.control.controller import Controller
from vpp.control.dispatcher import Dispatcher
from vpp.control.strategy import Strategy
from vpp.control.types import Snapshot
from vpp.control.writer import CommandWriter
from vpp.drivers import SiteDevices
from vpp.grid.link import GridLink
from vpp.site import Site
from vpp.store.store import Store
from vpp.telemetry import TelemetryBuilder

log = structlog.get_logger(__name__)

PRUNE_EVERY = timedelta(days=1)


class CycleRequests:
    """Asks for a control cycle out of phase (an event that starts at once must not wait a
    period), and tells when none is waiting or running."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.wanted = asyncio.Event()
        self.running = False

    def request(self) -> None:
        """Run a control cycle now."""
        self.wanted.set()

    async def idle(self) -> None:
        """Return once no requested control cycle is waiting to run."""
        for _ in range(100):
            if not self.wanted.is_set() and not self.running:
                return
            await self.clock.sleep(0)


class Agent:
    """Runs one site. `run()` returns when `stop` is set (SIGINT/SIGTERM in the CLI)."""

    def __init__(
        self,
        site: Site,
        clock: Clock,
        *,
        store: Store,
        link: GridLink,
        devices: SiteDevices,
        dispatcher: Dispatcher,
        arbiter: Arbiter,
        controller: Controller,
        strategy: Strategy,
        cycles: CycleRequests,
    ) -> None:
        self.site = site
        self.clock = clock
        self.store = store
        self.link = link
        self.devices = devices
        self.hub = devices.hub
        self.drivers = devices.drivers
        self.poller = devices.poller
        self.dispatcher = dispatcher
        self.arbiter = arbiter
        self.controller = controller
        self.strategy = strategy
        self._cycles = cycles
        self._telemetry = TelemetryBuilder(site)
        self.writer = CommandWriter(
            self.drivers, clock, store, watchdog_s=devices.watchdog_s, health=self.poller
        )
        self.cycles = 0
        # How late each timed cycle started after its tick (seconds): for metrics.
        self.lateness_total_s = 0.0
        self.lateness_max_s = 0.0
        self.timed_cycles = 0
        # The store's retention is applied at the first telemetry tick, then once a day.
        self._next_prune = datetime.min.replace(tzinfo=UTC)

    def snapshot(self) -> Snapshot:
        """Every device's last reading and health, taken at once."""
        return self.devices.snapshot()

    # -- loops ----------------------------------------------------------------------------

    async def _telemetry_loop(self) -> None:
        period = self.site.config.periods.telemetry_s
        tick = self.clock.monotonic()
        while True:
            tick += period
            await self.clock.sleep_until(tick)
            snap = self.snapshot()
            for dev_id, view in snap.devices.items():
                if view.usable and view.values:
                    self.store.add_telemetry(snap.ts, dev_id, view.values)
            # Only the grid extension carries it (and only then is it made this early).
            baseline = (
                self.controller.settlement_baseline_kw(snap.ts)
                if self.site.config.grid.extensions
                else None
            )
            self.link.send_telemetry(self._telemetry.message(snap, baseline_kw=baseline))
            if snap.ts >= self._next_prune:
                self._next_prune = snap.ts + PRUNE_EVERY
                await self._prune(snap.ts)

    async def _prune(self, now: datetime) -> None:
        """Delete what is older than the store's retention, a piece at a time (the loop
        goes on between pieces); a failure is logged and tried again the next day."""
        days = self.site.config.store.retention_days
        if days is None:
            return
        before = now - timedelta(days=days)
        rows = 0
        try:
            for n in self.store.prune_steps(before):
                rows += n
                if n:  # only after a delete: with nothing to prune the tick keeps its order
                    await asyncio.sleep(0)
        except sqlite3.Error as e:
            log.error("store_prune_failed", error=str(e), before=before.isoformat())
            return
        if rows:
            log.info("store_pruned", rows=rows, before=before.isoformat())

    async def _health_loop(self) -> None:
        changes = self.poller.subscribe()
        while True:
            ch = await changes.get()
            h = ch.health
            self.store.add_health(h.since, ch.device_id, str(h.state), h.reason, h.exception_code)

    async def _control_loop(self) -> None:
        period = self.site.config.periods.control_s
        tick = self.clock.monotonic()
        while True:
            tick += period
            sleeper = asyncio.ensure_future(self.clock.sleep_until(tick))
            woken = asyncio.ensure_future(self._cycles.wanted.wait())
            try:
                await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                woken.cancel()
            if self._cycles.wanted.is_set():
                self._cycles.wanted.clear()
                tick -= period  # an extra cycle; the fixed phase is kept
            else:
                late = max(0.0, self.clock.monotonic() - tick)
                self.timed_cycles += 1
                self.lateness_total_s += late
                self.lateness_max_s = max(self.lateness_max_s, late)
            await self.run_cycle()
            # A missed tick (a cycle that overran) is skipped, not run late.
            now = self.clock.monotonic()
            while tick + period <= now:
                tick += period

    async def run_cycle(self) -> None:
        """One fixed-phase cycle: snapshot → controller → arbiter → dispatch → writes."""
        self._cycles.running = True
        try:
            await self._run_cycle()
        finally:
            self._cycles.running = False

    async def _run_cycle(self) -> None:
        snap = self.snapshot()
        self.cycles += 1
        self.controller.after_snapshot(snap)

        def offline(device_id: str) -> bool:
            view = snap.devices.get(device_id)
            return view is not None and not view.usable

        if not self.strategy.dispatches:
            await self.writer.write(self.writer.reassert(offline))
            return
        plan = self.controller.plan_step(snap)
        target = self.arbiter.decide(self.controller.proposals(snap))
        self.controller.on_target(target)
        result = self.dispatcher.cycle(snap, plan, target)
        # Re-assertions first: the last command for a point wins, and a new one must not be
        # replaced by the old value re-asserted in the same cycle.
        await self.writer.write(self.writer.reassert(offline) + result.commands)
        if result.replan:
            self.controller.on_not_following(result.not_following)

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then stop cleanly (status offline, store flushed)."""
        log.info("agent_starting", site_id=self.site.id, devices=len(self.drivers))
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.hub is not None:
                    await stack.enter_async_context(self.hub)
                await stack.enter_async_context(self.poller)
                async with asyncio.TaskGroup() as tg:
                    tasks = [
                        tg.create_task(self.link.run(), name="link"),
                        tg.create_task(self._telemetry_loop(), name="telemetry"),
                        tg.create_task(self._health_loop(), name="health"),
                        tg.create_task(self._control_loop(), name="control"),
                    ]
                    tasks += [tg.create_task(t) for t in self.controller.tasks()]
                    await stop.wait()
                    log.info("agent_stopping", site_id=self.site.id)
                    # No control cycle, telemetry or plan once stopping: only the link stays,
                    # to send what is queued and the offline status (on the virtual clock,
                    # that wait may let time move on to the next cycle's tick).
                    link, rest = tasks[0], tasks[1:]
                    for t in rest:
                        t.cancel()
                    await asyncio.gather(*rest, return_exceptions=True)
                    with contextlib.suppress(Exception):
                        await self.link.close()
                    link.cancel()
        finally:
            self.store.close()
            log.info("agent_stopped", site_id=self.site.id)
