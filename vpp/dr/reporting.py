"""Baselines in use and the reports the agent publishes (grid-interface.md §Report).

Two baselines per event, for two jobs:

- the control baseline, fixed when the event is first planned and stored with it: what the
  closed loop aims below (the lower of X-of-Y over stored history and the forecast of the
  site without events);
- the settlement baseline, which every report states: the program's method from the site
  file's `settlement:` section (vpp.measure.programs) over the metered import in the store,
  past event days (from the store) and public holidays left out, with its fallback chain.
  It is made at the first report, when the event day's metered import up to the start is
  stored, and never from the agent's plan.

Reports are built by vpp.measure from the stored meter telemetry: a partial one after each
interval, the final one at the end; then `completed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import structlog

from devices.clock import Clock
from vpp.control.dispatcher import DispatchView
from vpp.control.types import CycleResult
from vpp.dr.events import EventManager
from vpp.dr.planning import STEP, Plan, floor_step
from vpp.grid.link import GridLink
from vpp.grid.messages import Event
from vpp.kinds import ReportRole, plugin_for
from vpp.measure.baseline import BaselineResult, XofYConfig, x_of_y_baseline
from vpp.measure.comfort import ZoneComfortInput
from vpp.measure.contract import report_dict
from vpp.measure.contribution import DeviceInput
from vpp.measure.programs import XofYMethod
from vpp.measure.report import EventInterval, EventSpec, build_report
from vpp.measure.series import StepSeries
from vpp.measure.settlement import event_busy, settlement_baseline
from vpp.site import Site
from vpp.store.store import Store

log = structlog.get_logger(__name__)

HISTORY_DAYS = 46
REBOUND_WINDOW = timedelta(hours=2)


def event_spec(event: Event) -> EventSpec:
    """A grid event as the measurement layer's plain data."""
    return EventSpec(
        event_id=event.event_id,
        modification=event.modification,
        signal=event.signal,
        intervals=tuple(EventInterval(iv.start, iv.duration, iv.value) for iv in event.intervals),
        program=event.program,
    )


@dataclass
class FlexTally:
    """Control cycles of one event interval: how many ran out of flexibility, by how much."""

    cycles: int = 0
    exhausted: int = 0
    max_unmet_kw: float = 0.0
    left_out: dict[str, str] = field(default_factory=dict)

    def note(self) -> str | None:
        """The report's explanation of a shortfall the site could not avoid, if any."""
        if not self.exhausted:
            return None
        text = (
            f"no flexibility left in {self.exhausted} of {self.cycles} control cycles "
            f"(up to {self.max_unmet_kw:.1f} kW short of the target)"
        )
        if self.left_out:
            text += "; out of control: " + ", ".join(
                f"{d} ({why})" for d, why in sorted(self.left_out.items())
            )
        return text


class Reporter:
    """Makes baselines and reports for the agent's events; sends reports on the grid link."""

    def __init__(
        self,
        site: Site,
        clock: Clock,
        store: Store,
        link: GridLink,
        events: EventManager,
        dispatcher: DispatchView,
        *,
        min_like_days: int = 5,
    ) -> None:
        self.site = site
        self.clock = clock
        self.store = store
        self.link = link
        self.events = events
        self.dispatcher = dispatcher
        self.min_like_days = min_like_days
        self.methods: dict[str, str] = {}
        self._like_days: dict[tuple[str, int, datetime, datetime], dict[datetime, float]] = {}
        self.settlement: dict[tuple[str, int], BaselineResult] = {}
        # Event versions whose baseline failed for the telemetry: not made again (and logged)
        # at every 5-s message; a report that makes it later puts it in `settlement`.
        self._running_failed: set[tuple[str, int]] = set()
        """Settlement baselines made, by (event id, modification)."""
        self._reported: dict[str, int] = {}
        self.tallies: dict[tuple[str, datetime], FlexTally] = {}
        self._tallied: datetime | None = None
        meters = [d.id for d in site.devices if plugin_for(d.kind).report_role is ReportRole.meter]
        self.meter = meters[0] if meters else None

    # -- baselines ------------------------------------------------------------------------

    def meter_series(self, start: datetime, end: datetime) -> StepSeries:
        """Site import (kW) from the store's telemetry windows, step-held per window."""
        rows = self.store.telemetry(self.meter, "import_power_kw", start, end) if self.meter else []
        hold = timedelta(seconds=self.site.config.store.telemetry_resolution_s)
        return StepSeries(rows, max_hold=hold, name="site_import_kw")

    def make_baseline(self, event: Event, forecast_plan: Plan | None) -> dict[datetime, float]:
        """The event's control baseline (15-min starts → kW), its method kept for the
        reports (see `baseline_profile`)."""
        profile, method = self.baseline_profile(event, forecast_plan)
        self.methods[event.event_id] = method
        log.info("baseline_made", event_id=event.event_id, method=method)
        return profile

    def baseline_profile(
        self, event: Event, forecast_plan: Plan | None
    ) -> tuple[dict[datetime, float], str]:
        """The control baseline `event` would get (15-min starts → kW) and its method.

        X-of-Y from stored history when enough like days exist; the forecast of the site
        without events when a plan is given; where both exist, the lower of the two, so the
        reduction is delivered against either (for a curtailment; a cap's is the forecast).
        Without both: the last hour's mean import.
        """
        start, end = floor_step(event.start), event.end + REBOUND_WINDOW
        steps = []
        t = start
        while t < end:
            steps.append(t)
            t += STEP
        # Like days bound a curtailment's target, so that it is delivered against the
        # settlement baseline too; a cap's target is the cap, and its baseline only describes
        # the site: the forecast, where there is one.
        curtail = event.signal == "curtail_kw"
        xofy = {}
        if curtail or forecast_plan is None:
            # Once per version of a received event: its control baseline is made again at
            # each plan until it starts, on the same like days (an offer's asks are not kept).
            key = (event.event_id, event.modification, start, end)
            xofy = self._like_days.get(key) or self._x_of_y(event, start, end)
            if event.event_id in self.events.states:
                self._like_days[key] = xofy
        forecast = {}
        if forecast_plan is not None:
            forecast = {t: kw for t in steps if (kw := forecast_plan.import_at(t)) is not None}
        profile: dict[datetime, float] = {}
        for t in steps:
            known = [p[t] for p in (xofy, forecast) if t in p]
            if known:
                profile[t] = min(known)
        methods = [m for m, p in (("x_of_y:10/10", xofy), ("forecast", forecast)) if p]
        if not profile:
            now = self.clock.now()
            recent = self.meter_series(now - timedelta(hours=1), now).average(
                now - timedelta(hours=1), now, min_coverage=0.0
            )
            level = recent.kw if recent.kw is not None else 0.0
            profile = {t: level for t in steps}
            methods = ["last_hour_mean"]
        method = "min(" + ",".join(methods) + ")" if len(methods) > 1 else methods[0]
        return profile, method

    def _x_of_y(self, event: Event, start: datetime, end: datetime) -> dict[datetime, float]:
        since = start - timedelta(days=HISTORY_DAYS)
        rows = (
            self.store.telemetry(self.meter, "import_power_kw", since, start) if self.meter else []
        )
        if not rows or rows[0][0] > start - timedelta(days=self.min_like_days):
            return {}  # too short a history for enough like days (and gridding it is costly)
        hold = timedelta(seconds=self.site.config.store.telemetry_resolution_s)
        history = StepSeries(rows, max_hold=hold, name="site_import_kw")
        hist = history.on_grid(
            floor_step(start - timedelta(days=HISTORY_DAYS)), start, min_coverage=0.9
        )
        result = x_of_y_baseline(
            [h for h in hist if h.kw is not None],
            tz=self.site.tz,
            event_start=event.start,
            event_end=event.end,
            config=XofYConfig(),
            profile_end=end,
            calendar=self.site.config.settlement.calendar(self.site.config.timezone),
            event_days=self._past_event_days(event),
        )
        if not result.ok or len(result.days_used) < self.min_like_days:
            return {}
        return {p.start: float(p.kw) for p in result.adjusted if p.kw is not None}

    def save_baseline(self, event_id: str, profile: dict[datetime, float]) -> None:
        self.store.save_baseline(event_id, self.methods.get(event_id, "forecast"), profile)

    def stored_baseline(self, event_id: str) -> dict[datetime, float]:
        method, profile = self.store.baseline(event_id)
        if method:
            self.methods[event_id] = method
        return profile

    # -- settlement -----------------------------------------------------------------------

    def _other_events(self, event: Event) -> list[tuple[Event, datetime]]:
        """The other stored events that may have changed the site's load (not test events,
        not opted out of), each with when it was received."""
        out: list[tuple[Event, datetime]] = []
        for stored in self.store.events():
            if stored.event_id == event.event_id or stored.status == "opt_out":
                continue
            try:
                other = Event.model_validate(stored.payload["event"])
            except Exception:  # an unreadable row: its day cannot be known, keep going
                continue
            if not other.test:
                out.append((other, stored.received))
        return out

    def _past_event_days(self, event: Event) -> set[date]:
        """Local dates of the other stored events that may have changed the site's load."""
        tz = self.site.tz
        days: set[date] = set()
        for other, _ in self._other_events(event):
            d, last = other.start.astimezone(tz).date(), other.end.astimezone(tz).date()
            while d <= last:
                days.add(d)
                d += timedelta(days=1)
        return days

    def settlement_baseline(self, event: Event) -> BaselineResult:
        """The baseline the event's reports state (see the module docstring); made once per
        modification from the store."""
        key = (event.event_id, event.modification)
        if key in self.settlement:
            return self.settlement[key]
        cfg = self.site.config.settlement
        program = cfg.program(event.program)
        lookback = max(
            [
                m.max_lookback_days
                for m in (program.baseline, program.short_notice, *program.fallback)
                if isinstance(m, XofYMethod)
            ]
            or [0]
        )
        stored = self.store.event(event.event_id)
        received = stored.received if stored is not None else None
        notice = event.start - received if received is not None else None
        others = [(o.event_id, got, o.start, o.end) for o, got in self._other_events(event)]
        result = settlement_baseline(
            self.meter_series(event.start - timedelta(days=lookback + 2), event.start),
            program,
            tz=self.site.tz,
            event_start=event.start,
            event_end=event.end,
            calendar=cfg.calendar(self.site.config.timezone),
            event_days=self._past_event_days(event),
            notice=notice,
            busy=event_busy(received, event.start, others, tz=self.site.tz),
        )
        log.info(
            "settlement_baseline",
            event_id=event.event_id,
            method=result.method,
            days=len(result.days_used),
            reason=result.reason,
        )
        self.settlement[key] = result
        return result

    def running_baseline_kw(self, now: datetime) -> float | None:
        """The settlement baseline (kW) at `now` while an event the site acts in runs: its
        profile's value for the 15-min step holding `now` (averaged over an event interval,
        what the interval's report states); None outside such an event, and until the import
        up to the event's start is stored (the baseline is made once, from it). An
        aggregator measures the site's live telemetry against it."""
        for state in self.events.states.values():
            ev = state.event
            if not state.live or state.status != "opt_in" or ev.test:
                continue
            if not any(i.start <= now < i.end for i in ev.intervals):
                continue
            if now < ev.start + self._lag():
                return None
            key = (ev.event_id, ev.modification)
            if key in self._running_failed and key not in self.settlement:
                return None  # until the reports' own attempt makes it
            try:
                result = self.settlement_baseline(ev)
            except Exception as e:  # telemetry must never stop on a baseline
                self._running_failed.add(key)
                log.error("running_baseline_failed", event_id=ev.event_id, error=repr(e))
                return None
            step = next((p for p in result.adjusted if p.start <= now < p.start + p.duration), None)
            return None if step is None or step.kw is None else round(step.kw, 3)
        return None

    # -- reports --------------------------------------------------------------------------

    def note_cycle(self, ts: datetime, result: CycleResult) -> None:
        """Count a control cycle serving an event (once each) for the report's notes."""
        target = result.target
        if target is None or target.event_id is None or ts == self._tallied:
            return
        self._tallied = ts
        tally = self.tallies.setdefault((target.event_id, floor_step(ts)), FlexTally())
        tally.cycles += 1
        if result.unmet_kw > 0:
            tally.exhausted += 1
            tally.max_unmet_kw = max(tally.max_unmet_kw, result.unmet_kw)
            excluded = self.dispatcher.excluded
            tally.left_out.update({d: excluded.get(d, "left out") for d in result.left_out})

    def _add_notes(self, event: Event, payload: dict[str, Any]) -> None:
        for iv, out in zip(event.intervals, payload.get("intervals", []), strict=False):
            total = FlexTally()
            for (event_id, step), t in self.tallies.items():
                if event_id == event.event_id and floor_step(iv.start) <= step < iv.end:
                    total.cycles += t.cycles
                    total.exhausted += t.exhausted
                    total.max_unmet_kw = max(total.max_unmet_kw, t.max_unmet_kw)
                    total.left_out.update(t.left_out)
            note = total.note()
            missing = out.get("missing")
            if note and isinstance(missing, dict):
                missing.setdefault("notes", []).append(note)

    def _lag(self) -> timedelta:
        """How long after an interval's end its report waits (its telemetry to be stored)."""
        return timedelta(seconds=2 * self.site.config.periods.telemetry_s)

    def resume(self, event: Event) -> None:
        """After a restart: intervals already reported (per the store) are not reported again."""
        stored = [
            r
            for r in self.store.reports(event.event_id)
            if r.get("modification") == event.modification and "ts" in r
        ]
        if stored:
            ts = datetime.fromisoformat(stored[-1]["ts"])
            lag = self._lag()
            self._reported[event.event_id] = sum(1 for iv in event.intervals if iv.end + lag <= ts)

    def report(self, event: Event, as_of: datetime) -> dict[str, Any]:
        """The report of `event` as of `as_of` (partial before the end) against its
        settlement baseline, with our extension
        (vpp.grid.messages.ExtendedReport): `signal`, `ts`, `final`, per-interval `ratio`,
        `shortfall_kw` and `missing` (offline devices, notes on a shortfall), `details`.
        This full form is what the store keeps and `tick` gives the grid link (which sends
        what its protocol carries: on MQTT, only the contract's fields unless the site's
        `grid.extensions` is on)."""
        spec = event_spec(event)
        result = self.settlement_baseline(event)
        start = spec.start - timedelta(hours=4)
        site = self.meter_series(start, as_of)
        zones = []
        devices = []
        hold = timedelta(seconds=self.site.config.store.telemetry_resolution_s * 2)
        for d in self.site.devices:
            role = plugin_for(d.kind).report_role
            if role is ReportRole.zone:
                band = d.config.comfort
                temps = self.store.telemetry(d.id, "zone_temp_c", spec.start, as_of)
                zones.append(
                    ZoneComfortInput(
                        d.id,
                        temps,
                        band.min_c if band else 22.0,
                        band.max_c if band else 26.0,
                        max_gap=hold,
                    )
                )
            elif role is ReportRole.device:
                power = self.store.telemetry(d.id, "power_kw", start, as_of)
                devices.append(
                    DeviceInput(d.id, StepSeries(power, max_hold=hold, name=f"{d.id}.power_kw"))
                )
        rep = build_report(
            spec, baseline=result, site=site, as_of=as_of, zones=zones, devices=devices
        )
        payload = report_dict(rep, ts=self.clock.now())
        self._add_notes(event, payload)
        return payload

    def tick(self, now: datetime) -> None:
        """Publish what is due: a report after each ended interval; the final one, then
        `completed`, once the event is over."""
        for state in list(self.events.states.values()):
            if not state.live or state.status == "opt_out" or state.event.test:
                continue
            ev = state.event
            # Wait for the telemetry of the interval's last seconds to be stored.
            lag = self._lag()
            ended = sum(1 for iv in ev.intervals if iv.end + lag <= now)
            if ended == 0 or ended == self._reported.get(ev.event_id, 0):
                continue
            final = ended == len(ev.intervals)
            as_of = ev.intervals[ended - 1].end
            try:
                payload = self.report(ev, as_of)
            except Exception as e:  # a report must never stop the agent
                log.error("report_failed", event_id=ev.event_id, error=repr(e))
                self._reported[ev.event_id] = ended
                continue
            payload["ts"] = now.isoformat()
            payload["final"] = final
            self.store.add_report(now, ev.event_id, ev.modification, payload, final)
            self.link.send_report(payload)  # the link sends what its protocol carries
            self._reported[ev.event_id] = ended
            log.info(
                "report_published",
                event_id=ev.event_id,
                final=final,
                delivered_ratio=payload.get("delivered_ratio"),
            )
            if final:
                self.events.complete(ev.event_id)
