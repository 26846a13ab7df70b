"""The running agent as the operator sees it (a vpp.view.SiteView): the devices' snapshot,
the DR controller's events, baselines and plan, the grid link's state, and the store."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from vpp.agent import Agent
from vpp.dr.controller import DrController
from vpp.grid.fanout import FanoutLink
from vpp.mqtt_link import MqttLink
from vpp.store_view import StoredSite
from vpp.view import (
    AgentMetrics,
    Chart,
    DeviceMetrics,
    DeviceStatus,
    EventStatus,
    PlanRow,
    SiteStatus,
    SiteTarget,
)

HISTORY = timedelta(hours=3)
"""How far back the chart goes."""
AHEAD = timedelta(hours=6)
"""How far ahead the chart shows the plan."""
PLAN_AHEAD = timedelta(hours=4)
"""How far ahead the plan's table goes."""


class AgentView:
    """A read-only view of `agent`, read on the agent's loop (nothing here blocks)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.stored = StoredSite(agent.site, agent.store)
        self.dr = agent.controller if isinstance(agent.controller, DrController) else None

    def _link(self) -> MqttLink | None:
        """Our MQTT contract's link (also behind a fan-out), whose broker state is shown."""
        link = self.agent.link
        links = link.links.values() if isinstance(link, FanoutLink) else [link]
        return next((x for x in links if isinstance(x, MqttLink)), None)

    def status(self) -> SiteStatus:
        a, cfg = self.agent, self.agent.site.config
        snap = a.snapshot()
        last = a.dispatcher.last
        t = last[1].target if last is not None else None
        link = self._link()
        return SiteStatus(
            site_id=a.site.id,
            name=cfg.name,
            timezone=cfg.timezone,
            mode="live",
            now=a.clock.now(),
            site_import_kw=snap.site_import_kw,
            import_limit_kw=cfg.limits.import_kw,
            target=None
            if t is None
            else SiteTarget(
                import_max_kw=t.import_max_kw, source=t.source.value, event_id=t.event_id
            ),
            strategy=a.strategy.name,
            broker_connected=link.connected.is_set() if link is not None else None,
            devices=len(snap.devices),
            devices_online=sum(1 for v in snap.devices.values() if v.usable),
            plan_made_at=self.dr.plan.made_at if self.dr and self.dr.plan else None,
            outbox_depth=link.outbox.pending if link is not None else None,
        )

    def devices(self) -> list[DeviceStatus]:
        snap = self.agent.snapshot()
        commands = self.stored.last_commands(since=self.agent.clock.now() - HISTORY)
        out = []
        for d in self.agent.site.devices:
            view = snap.devices.get(d.id)
            h = view.health if view is not None else None
            out.append(
                DeviceStatus(
                    id=d.id,
                    kind=str(d.kind),
                    health=str(h.state) if h is not None else "unknown",
                    reason=h.reason if h is not None else "",
                    since=h.since if h is not None else None,
                    read_ts=view.read_ts if view is not None else None,
                    values=dict(view.values) if view is not None else {},
                    last_command=commands.get(d.id),
                )
            )
        return out

    def events(self) -> list[EventStatus]:
        snap = self.agent.snapshot()
        return self.stored.events(
            self.agent.clock.now(),
            baselines=self.dr.baselines if self.dr else None,
            import_now_kw=snap.site_import_kw,
        )

    def report(self, event_id: str) -> dict[str, Any] | None:
        return self.stored.latest_report(event_id)

    def _plan(self, start: datetime, end: datetime) -> dict[datetime, float]:
        plan = self.dr.plan if self.dr else None
        if plan is None:
            return {}
        g = plan.grid
        steps = ((g.start + k * g.step, kw) for k, kw in enumerate(plan.schedule.site_import_kw))
        return {t: kw for t, kw in steps if start <= t < end}

    def plan(self) -> list[PlanRow]:
        plan = self.dr.plan if self.dr else None
        if plan is None:
            return []
        g, sched = plan.grid, plan.schedule
        now = self.agent.clock.now()
        kind = {d.id: str(d.kind) for d in self.agent.site.devices}
        rows = []
        for k in range(g.steps):
            start = g.start + k * g.step
            if start + g.step <= now:
                continue
            if start >= now + PLAN_AHEAD:
                break
            by_kind: dict[str, float] = {}
            for asset, series in sched.power_kw.items():
                name = kind.get(asset, "other")
                by_kind[name] = by_kind.get(name, 0.0) + series[k]
            rows.append(
                PlanRow(start=start, site_import_kw=sched.site_import_kw[k], power_kw=by_kind)
            )
        return rows

    def chart(self) -> Chart:
        snap = self.agent.snapshot()
        now = self.agent.clock.now()
        start, end = now - HISTORY, now + AHEAD
        live = (snap.ts, snap.site_import_kw) if snap.site_import_kw is not None else None
        events = [e for e in self.events() if e.end > start and e.start < end]
        return self.stored.chart(start, end, events, plan=self._plan(start, end), live=live)

    def metrics(self) -> AgentMetrics:
        a = self.agent
        link = self._link()
        delivered: dict[str, float] = {}
        requested: dict[str, float] = {}
        for ev in self.events():
            if ev.role != "current":
                continue
            now = a.clock.now()
            for iv in ev.intervals:
                if iv.start <= now < iv.end:
                    requested[ev.event_id] = iv.requested_kw
                    if iv.delivered_kw is not None:
                        delivered[ev.event_id] = iv.delivered_kw
        return AgentMetrics(
            devices={
                i: DeviceMetrics(
                    polls=s.polls, failures=s.failures, poll_seconds_total=s.duration_total_s
                )
                for i, s in a.poller.device_stats().items()
            },
            cycles=a.timed_cycles,
            cycle_lateness_seconds_total=a.lateness_total_s,
            cycle_lateness_seconds_max=a.lateness_max_s,
            plans=self.dr.plans if self.dr else 0,
            plan_solve_seconds_total=self.dr.solve_s_total if self.dr else 0.0,
            responses=dict(self.dr.events.answers) if self.dr else {},
            event_delivered_kw=delivered,
            event_requested_kw=requested,
            outbox_depth=link.outbox.pending if link is not None else 0,
            broker_connected=link.connected.is_set() if link is not None else False,
            broker_connects=link.connects if link is not None else 0,
        )
