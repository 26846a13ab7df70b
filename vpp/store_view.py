"""The parts of the operator's view (vpp.view) that come from a site's store: events with their
baselines and reports, last commands and health, the meter's import for the chart. Shared by
the live agent's view (vpp.agent_view) and a replay's (vpp.replay.view)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from vpp.dr.planning import STEP, floor_step
from vpp.grid.messages import Event
from vpp.kinds import ReportRole, plugin_for
from vpp.site import Site
from vpp.store.store import Store, StoredEvent
from vpp.view import Chart, EventIntervalStatus, EventStatus, LastCommand

DONE = frozenset({"completed", "cancelled", "opt_out", "rejected"})
"""Statuses of an event that is no longer carried out."""


def meter_of(site: Site) -> str | None:
    """The site meter's device id (the report's meter), if the site has one."""
    meters = [d.id for d in site.devices if plugin_for(d.kind).report_role is ReportRole.meter]
    return meters[0] if meters else None


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class StoredSite:
    """Reads what the operator's view needs from one store (read-only)."""

    def __init__(self, site: Site, store: Store) -> None:
        self.site = site
        self.store = store
        self.meter = meter_of(site)

    # -- devices --------------------------------------------------------------------------

    def last_commands(self, since: datetime | None = None) -> dict[str, LastCommand]:
        """Per device id, the last command written (or tried), of those since `since` (the
        commands' time index keeps this quick on a store of months)."""
        rows = self.store.rows(
            "SELECT device_id, ts, point, written, requested, ok, reason, MAX(id) FROM commands"
            " WHERE ts >= ? GROUP BY device_id",
            (since.timestamp() if since is not None else float("-inf"),),
        )
        out = {}
        for dev, ts, point, written, requested, ok, reason, _ in rows:
            value = written if written is not None else requested
            out[dev] = LastCommand(
                ts=_utc(ts), point=point, value=float(value), ok=bool(ok), reason=reason or ""
            )
        return out

    def last_health(self) -> dict[str, tuple[str, str, datetime]]:
        """Per device id, its last recorded health change: (state, reason, since)."""
        rows = self.store.rows(
            "SELECT device_id, state, reason, ts FROM health"
            " WHERE id IN (SELECT MAX(id) FROM health GROUP BY device_id)"
        )
        return {dev: (state, reason or "", _utc(ts)) for dev, state, reason, ts in rows}

    def last_values(self) -> dict[str, tuple[datetime, dict[str, float]]]:
        """Per device id, its newest telemetry window (start, point → mean)."""
        rows = self.store.rows(
            "SELECT t.device_id, t.ts, t.point, t.mean FROM telemetry t JOIN"
            " (SELECT device_id, MAX(ts) AS ts FROM telemetry GROUP BY device_id) m"
            " ON t.device_id = m.device_id AND t.ts = m.ts"
        )
        out: dict[str, tuple[datetime, dict[str, float]]] = {}
        for dev, ts, point, mean in rows:
            out.setdefault(dev, (_utc(ts), {}))[1][point] = float(mean)
        return out

    # -- events ---------------------------------------------------------------------------

    def meter_import(self, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
        """The meter's import (kW) per telemetry window in [start, end)."""
        if self.meter is None:
            return []
        return self.store.telemetry(self.meter, "import_power_kw", start, end)

    def latest_report(self, event_id: str) -> dict[str, Any] | None:
        """The event's newest stored report (partial or final), if any."""
        reports = self.store.reports(event_id)
        return reports[-1] if reports else None

    def events(
        self,
        now: datetime,
        *,
        baselines: Mapping[str, Mapping[datetime, float]] | None = None,
        import_now_kw: float | None = None,
        limit: int = 50,
    ) -> list[EventStatus]:
        """The `limit` newest stored events, newest first, as of `now`. `baselines` (event
        id → 15-min start → kW) override the stored ones (the live agent's, before they are
        stored); `import_now_kw` joins the running interval's measured import."""
        recent = self.store.events()[-limit:]
        stored = [(s, ev) for s in recent if (ev := _event(s)) is not None]
        upcoming = [(s, ev) for s, ev in stored if s.status not in DONE and ev.start > now]
        nxt = min(upcoming, key=lambda p: p[1].start)[0] if upcoming else None
        out = []
        for s, ev in reversed(stored):
            if baselines is not None and s.event_id in baselines:
                baseline = dict(baselines[s.event_id])
            else:
                baseline = self.store.baseline(s.event_id)[1]
            if ev.start <= now < ev.end and s.status not in DONE:
                role = "current"
            elif s is nxt:
                role = "next"
            else:
                role = "past" if ev.end <= now or s.status in DONE else "later"
            out.append(self._event_status(s, ev, role, baseline, now, import_now_kw))
        return out

    def _event_status(
        self,
        s: StoredEvent,
        ev: Event,
        role: str,
        baseline: dict[datetime, float],
        now: datetime,
        import_now_kw: float | None,
    ) -> EventStatus:
        report = self.latest_report(s.event_id) or {}
        reported = {
            datetime.fromisoformat(iv["start"]): iv.get("delivered_kw")
            for iv in report.get("intervals", [])
        }
        rows = []
        for iv in ev.intervals:
            base = baseline.get(floor_step(iv.start))
            if ev.signal == "curtail_kw":
                target = None if base is None else base - iv.value
            elif ev.signal in ("import_cap_kw", "import_target_kw"):
                target = iv.value
            else:
                target = None
            delivered: float | None = None
            measured: str | None = None
            if iv.start in reported and reported[iv.start] is not None:
                delivered, measured = reported[iv.start], "report"
            elif role == "current" and iv.start <= now < iv.end and base is not None:
                seen = [kw for _, kw in self.meter_import(iv.start, now)]
                if import_now_kw is not None:
                    seen.append(import_now_kw)
                if seen:
                    delivered, measured = base - math.fsum(seen) / len(seen), "live"
            rows.append(
                EventIntervalStatus(
                    start=iv.start,
                    end=iv.end,
                    requested_kw=iv.value,
                    baseline_kw=base,
                    target_kw=target,
                    delivered_kw=delivered,
                    measured=measured,
                )
            )
        expected = s.payload.get("expected_kw")
        return EventStatus(
            event_id=s.event_id,
            modification=s.modification,
            signal=ev.signal,
            status=s.status,
            program=ev.program,
            start=ev.start,
            end=ev.end,
            role=role,
            expected_kw=list(expected) if expected is not None else None,
            delivered_ratio=report.get("delivered_ratio"),
            intervals=rows,
        )

    # -- chart ----------------------------------------------------------------------------

    def chart(
        self,
        start: datetime,
        end: datetime,
        events: list[EventStatus],
        *,
        plan: Mapping[datetime, float] | None = None,
        live: tuple[datetime, float] | None = None,
    ) -> Chart:
        """The meter's import in [start, end) (telemetry windows, then the `live` reading),
        each event's baseline and target per interval, and the `plan`'s import (step start →
        kW) on one time axis."""
        points: dict[float, dict[str, float]] = {}

        def put(t: datetime, series: str, kw: float | None) -> None:
            if kw is not None and start <= t < end + STEP:
                points.setdefault(t.timestamp(), {})[series] = kw

        for t, kw in self.meter_import(start, end):
            put(t, "import", kw)
        if live is not None:
            put(live[0], "import", live[1])
        for ev in events:
            for iv in ev.intervals:
                # A step series: the value at the interval's start and just before its end.
                for t in (iv.start, iv.end - timedelta(seconds=1)):
                    put(t, "baseline", iv.baseline_kw)
                    put(t, "target", iv.target_kw)
        for t, kw in sorted((plan or {}).items()):
            put(t, "plan", kw)
        ts = sorted(points)
        return Chart(
            ts=ts,
            import_kw=[points[t].get("import") for t in ts],
            baseline_kw=[points[t].get("baseline") for t in ts],
            target_kw=[points[t].get("target") for t in ts],
            plan_kw=[points[t].get("plan") for t in ts],
        )


def _event(s: StoredEvent) -> Event | None:
    try:
        return Event.model_validate(s.payload["event"])
    except Exception:  # a row of an older contract: left out of the view, never an error
        return None
