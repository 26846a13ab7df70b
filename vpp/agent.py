"""The agent: one building's controller. It owns its tasks (an async context manager per
part) and runs them until asked to stop:

- the Poller reads every device on its period (devices.poller);
- the MQTT link keeps status (retained, last will), sends telemetry, responses, reports;
- the control cycle (fixed phase, `periods.control_s`) snapshots, dispatches, writes;
- the grid handler and DR controller (vpp.grid, vpp.dr) turn events into plans;
- health changes, commands and down-sampled telemetry go to the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import structlog

from devices.clock import Clock
from devices.driver import Driver
from devices.poller import Poller
from devices.profile import Kind
from vpp.control.dispatcher import Dispatcher
from vpp.control.types import DeviceView, PlanStep, Snapshot, Target
from vpp.control.writer import CommandWriter
from vpp.drivers import build_drivers, mqtt_hub_for
from vpp.mqtt_link import MqttLink
from vpp.site import BrokerConfig, Site
from vpp.store.store import Store
from vpp.telemetry import TelemetryBuilder

log = structlog.get_logger(__name__)

PlanSource = Callable[[Snapshot], PlanStep]
TargetSource = Callable[[Snapshot], Target | None]


class Agent:
    """Runs one site. `run()` returns when `stop` is set (SIGINT/SIGTERM in the CLI)."""

    def __init__(
        self,
        site: Site,
        clock: Clock,
        *,
        broker: BrokerConfig | None = None,
        store_path: Path | None = None,
        client_id: str | None = None,
    ) -> None:
        self.site = site
        self.clock = clock
        self.broker = broker or site.config.broker or BrokerConfig()
        self.store = Store(
            store_path or site.config.store.file(site.id),
            telemetry_resolution_s=site.config.store.telemetry_resolution_s,
        )
        self.link = MqttLink(
            self.broker,
            site.id,
            clock,
            client_id=client_id,
            extensions=site.config.grid.extensions,
        )
        self.hub = mqtt_hub_for(site, clock, self.broker, self.link.client_id)
        self.drivers: dict[str, Driver] = build_drivers(site, clock, self.hub)
        periods = site.config.periods
        self.poller = Poller(
            self.drivers.values(),
            clock=clock,
            period_s=periods.poll_s,
            periods={
                d.id: d.config.poll_s
                for d in site.devices
                if d.config.poll_s and d.id in self.drivers
            },
        )
        self.dispatcher = Dispatcher(site)
        self._telemetry = TelemetryBuilder(site)
        self.writer = CommandWriter(self.drivers, clock, self.store, watchdog_s=self._watchdog_s)
        self.plan_source: PlanSource = lambda _snap: PlanStep()
        self.target_source: TargetSource = self._site_limit_target
        self.cycle_hooks: list[Callable[[Snapshot], Awaitable[None]]] = []
        self.extra_tasks: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self.replan_hooks: list[Callable[[list[str]], None]] = []
        self.control_enabled = True
        self.cycles = 0
        self._cycle_now = asyncio.Event()
        self._in_cycle = False
        self._meter = next((d.id for d in site.devices if d.kind is Kind.meter), None)

    # -- views ----------------------------------------------------------------------------

    def _watchdog_s(self, device_id: str) -> float:
        r = self.poller.latest(device_id)
        if r is not None and "watchdog_s" in r.values:
            return float(r.values["watchdog_s"])
        return 60.0

    def _site_limit_target(self, snap: Snapshot) -> Target | None:
        return Target(self.site.config.limits.import_kw, "site_limit")

    def snapshot(self) -> Snapshot:
        """Every device's last reading and health, taken at once."""
        views: dict[str, DeviceView] = {}
        for d in self.site.devices:
            if d.id not in self.drivers:
                views[d.id] = DeviceView(d.id, False, {}, None, "no driver")
                continue
            r = self.poller.latest(d.id)
            h = self.poller.health(d.id)
            views[d.id] = DeviceView(
                d.id,
                h.usable and r is not None,
                dict(r.values) if r else {},
                r.ts if r else None,
                h.reason,
            )
        meter = views.get(self._meter) if self._meter else None
        site_import = (
            meter.values.get("import_power_kw") if meter is not None and meter.usable else None
        )
        return Snapshot(self.clock.now(), self.clock.monotonic(), site_import, views)

    def request_cycle(self) -> None:
        """Run a control cycle now (an event that starts at once must not wait a period)."""
        self._cycle_now.set()

    async def cycle_idle(self) -> None:
        """Return once no requested control cycle is waiting to run."""
        for _ in range(100):
            if not self._cycle_now.is_set() and not self._in_cycle:
                return
            await self.clock.sleep(0)

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
                    self.store.add_telemetry(snap.ts, dev_id, dict(view.values))
            self.link.send_telemetry(self._telemetry.message(snap))

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
            woken = asyncio.ensure_future(self._cycle_now.wait())
            try:
                await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                woken.cancel()
            if self._cycle_now.is_set():
                self._cycle_now.clear()
                tick -= period  # an extra cycle; the fixed phase is kept
            await self.run_cycle()
            # A missed tick (a cycle that overran) is skipped, not run late.
            now = self.clock.monotonic()
            while tick + period <= now:
                tick += period

    async def run_cycle(self) -> None:
        """One fixed-phase cycle: snapshot → controllers → writes."""
        self._in_cycle = True
        try:
            await self._run_cycle()
        finally:
            self._in_cycle = False

    async def _run_cycle(self) -> None:
        snap = self.snapshot()
        self.cycles += 1
        for hook in self.cycle_hooks:
            await hook(snap)

        def offline(device_id: str) -> bool:
            view = snap.devices.get(device_id)
            return view is not None and not view.usable

        if not self.control_enabled:
            await self.writer.write(self.writer.reassert(offline))
            return
        plan = self.plan_source(snap)
        target = self.target_source(snap)
        result = self.dispatcher.cycle(snap, plan, target)
        # Re-assertions first: the last command for a point wins, and a new one must not be
        # replaced by the old value re-asserted in the same cycle.
        await self.writer.write(self.writer.reassert(offline) + result.commands)
        if result.replan:
            for replan in self.replan_hooks:
                replan(result.not_following)

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
                        tg.create_task(self.link.run(), name="mqtt"),
                        tg.create_task(self._telemetry_loop(), name="telemetry"),
                        tg.create_task(self._health_loop(), name="health"),
                        tg.create_task(self._control_loop(), name="control"),
                    ]
                    tasks += [tg.create_task(t()) for t in self.extra_tasks]
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
