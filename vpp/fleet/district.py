"""The district's events: each district event message answered as a site answers it (the
contract's state machine, vpp.grid.ledger), allocated over the sites' offers, sent down as
ordinary site events, followed in real time (re-allocating a failing site's part with
modifications from the next interval), reported upward per interval and settled at its end.

Every decision is stored before it is sent (vpp.fleet.store): a restarted aggregator goes on
with the runs it finds, and answers a repeated district event as a duplicate.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import structlog

from devices.clock import Clock
from vpp.fleet.allocate import Allocation, Request, allocate
from vpp.fleet.book import FleetBook, SiteMessage
from vpp.fleet.config import FleetConfig
from vpp.fleet.follow import deficits, failures
from vpp.fleet.request import (
    SIGNALS,
    candidates,
    district_import_kw,
    request_intervals,
    requested_kw,
)
from vpp.fleet.run import EventRun, Leg
from vpp.fleet.settlement import Row, district_report, interval_rows, reported_by_all, write_csv
from vpp.fleet.store import FleetStore
from vpp.grid.ledger import Action, EventState, completed, decide, opted_in, opted_out
from vpp.grid.messages import Event, Response, model_context
from vpp.grid.parse import Rejection, failed_handling, parse_event

log = structlog.get_logger(__name__)

REPORT_GRACE = timedelta(seconds=60)
"""After an interval ends, how long the district waits for the sites' reports of it before
it reports with what it has (telemetry estimates for the missing sites)."""


class Upward(Protocol):
    """What the district sends to its grid (a vpp.grid.link.GridLink's sending half)."""

    def send_response(self, response: Response) -> None: ...
    def send_report(self, report: dict[str, Any]) -> None: ...


class Downward(Protocol):
    """What the district sends to its sites (vpp.fleet.downlink.SiteLink)."""

    def send_event(self, site_id: str, event: Event) -> None: ...


def _carried_legs(prior: EventRun | None, starts: list[datetime]) -> dict[str, Leg]:
    """The legs of a modified district event: each site's modification count, answer and
    reference carried over (its next event message must be a higher modification); its
    values too when the intervals are the same, else none yet (the new allocation sets
    them from the current interval on)."""
    if prior is None:
        return {}
    same = prior.starts == starts
    return {
        s: leg.model_copy(
            update={
                "failed": None,
                "limit_kw": None,
                "record": None,
                "values": leg.values if same else [0.0] * len(starts),
            }
        )
        for s, leg in prior.legs.items()
    }


class DistrictEvents:
    """The district's event handling; one instance per aggregator, on its event loop."""

    def __init__(
        self,
        fleet: FleetConfig,
        clock: Clock,
        store: FleetStore,
        book: FleetBook,
        up: Upward,
        down: Downward,
        settlement: Path | None = None,
    ) -> None:
        self.fleet = fleet
        self.clock = clock
        self.store = store
        self.book = book
        self.up = up
        self.down = down
        self.settlement = settlement
        self.states = store.events()
        self.runs = store.runs()
        self.rests = store.rests()
        self.allocations: list[Allocation] = []
        """Every allocation made by this process (solve times, for the bench)."""
        self.csv_written: list[Path] = []

    # -- district event messages ----------------------------------------------------------

    def handle(self, payload: bytes) -> None:
        """One message from the district's events topic: answered, never raised."""
        now = self.clock.now()
        parsed = parse_event(payload, now)
        if isinstance(parsed, Rejection):
            self._answer(parsed.response)
            return
        before = self.states.get(parsed.event_id)
        try:
            self._handle(parsed, now)
        except Exception as exc:  # a fault of ours: the grid learns, the aggregator goes on
            log.exception("fleet_event_failed", event_id=parsed.event_id)
            # Not carried out: the event's state as it was, so that the grid may send it again.
            if before is not None:
                self._put_state(before)
            elif self.states.pop(parsed.event_id, None) is not None:
                self.store.drop_event(parsed.event_id)
            self._answer(failed_handling(parsed, exc, now).response)

    def _handle(self, event: Event, now: datetime) -> None:
        decision = decide(self.states, event, now)
        if decision.state is not None:
            self._put_state(decision.state)
        for r in decision.responses:
            self._answer(r)
        if decision.action is Action.CANCEL:
            self._cancel(event.event_id, now)
        if decision.plan and decision.state is not None:
            self._plan(decision.state, now)

    def _plan(self, state: EventState, now: datetime) -> None:
        event = state.event
        if event.signal not in SIGNALS:
            self._opt_out(state, f"the district takes {' and '.join(SIGNALS)} events", now)
            return
        prior = self.runs.get(event.event_id)
        run = EventRun(
            event_id=event.event_id,
            modification=event.modification,
            signal=event.signal,
            starts=[iv.start for iv in event.intervals],
            ends=[iv.end for iv in event.intervals],
            requested_kw=requested_kw(event, self.book),
            legs=_carried_legs(prior, [iv.start for iv in event.intervals]),
            revision=prior.revision + 1 if prior else 0,
            test=event.test,
        )
        first = next((k for k, e in enumerate(run.ends) if e > now), len(run.ends))
        alloc = self._allocate(run, first, now)
        if alloc.covered_share() < self.fleet.allocation.opt_out_below:
            why = alloc.reason or "the sites' offers cover too little of the request"
            self._opt_out(state, f"the district cannot deliver: {why}", now)
            if prior is not None:
                self._cancel(event.event_id, now)
            return
        self._apply(run, alloc, first, now)
        expected = list(alloc.expected_kw)
        if event.signal == "import_cap_kw":
            total = district_import_kw(self.book)
            expected = [round(total - e, 3) for e in expected]
        new_state, response = opted_in(state, expected, now)
        self._put_state(new_state)
        self._answer(response)

    def _opt_out(self, state: EventState, reason: str, now: datetime) -> None:
        new_state, response = opted_out(state, reason, now)
        self._put_state(new_state)
        self._answer(response)

    def _allocate(self, run: EventRun, first: int, now: datetime, keep: bool = False) -> Allocation:
        cands = candidates(self.fleet, self.book, run, self.rests, now, keep)
        alloc = allocate(
            cands,
            Request(request_intervals(run), now, first),
            self.fleet.allocation.reliability_margin,
            self.fleet.allocation.max_site_share,
        )
        self.allocations.append(alloc)
        log.info(
            "fleet_allocated",
            event_id=run.event_id,
            revision=run.revision,
            sites=len(alloc.sites),
            solve_s=round(alloc.solve_s, 4),
            reason=alloc.reason,
        )
        return alloc

    def _apply(
        self,
        run: EventRun,
        alloc: Allocation,
        first: int,
        now: datetime,
        keep: set[str] | None = None,
    ) -> None:
        """Take `alloc` from interval `first` on; send every site whose part changed. The
        sites in `keep` keep their values of the intervals started by `now`."""
        n = len(run.starts)
        started = sum(1 for s in run.starts if s <= now)
        for site_id in sorted(set(alloc.sites) | set(run.legs)):
            new = alloc.sites.get(site_id, (0.0,) * n)
            leg = run.legs.get(site_id)
            if leg is None:
                info = self.book.sites[site_id]
                leg = Leg(site_id=site_id, values=[0.0] * n, reference_kw=info.last_before(now))
                run.legs[site_id] = leg
            upto = max(first, started) if keep and site_id in keep else first
            values = leg.values[:upto] + list(new[upto:])
            if values == leg.values and leg.modification >= 0:
                continue
            leg.values = values
            leg.changed_at = now
            if leg.status == "opt_out" or (leg.modification < 0 and not any(values)):
                continue  # nothing to tell a site that opted out, or one never asked
            leg.modification += 1
            self.down.send_event(site_id, self._site_event(run, leg, now))
        self.store.put_run(run)
        self.store.put_allocation(run, now, alloc.reason)
        self.runs[run.event_id] = run

    def _site_event(self, run: EventRun, leg: Leg, now: datetime, cancel: bool = False) -> Event:
        data = {
            "v": 1,
            "event_id": run.event_id,
            "modification": leg.modification,
            "signal": "curtail_kw",
            "intervals": [
                {"start": s, "duration": e - s, "value": leg.asked(k)}
                for k, (s, e) in enumerate(zip(run.starts, run.ends, strict=True))
            ],
            "cancelled": cancel,
            "test": run.test,
            "program": self.fleet.district_id,
        }
        return Event.model_validate(data, context=model_context(now))

    def _cancel(self, event_id: str, now: datetime) -> None:
        run = self.runs.get(event_id)
        if run is None or run.done:
            return
        for site_id, leg in run.legs.items():
            if leg.modification >= 0 and leg.status not in ("opt_out", "completed"):
                leg.modification += 1
                self.down.send_event(site_id, self._site_event(run, leg, now, cancel=True))
        run.done = True
        self.store.put_run(run)

    # -- the sites' messages --------------------------------------------------------------

    def on_site_message(self, msg: SiteMessage) -> None:
        """A site's answer (its leg's status) or report (kept for settlement)."""
        event_id = msg.payload.get("event_id")
        if msg.leaf == "reports":
            if isinstance(event_id, str):
                self.store.put_site_report(msg.site_id, event_id, msg.payload)
                self._reference_from(msg, event_id)
            return
        self.store.put_site_response(msg.site_id, msg.payload)
        run = self.runs.get(event_id) if isinstance(event_id, str) else None
        leg = run.legs.get(msg.site_id) if run is not None else None
        if run is None or leg is None:
            return
        mod = msg.payload.get("modification")
        if mod is None or mod == leg.modification:
            leg.status = str(msg.payload["status"])  # stored as its response row

    def _reference_from(self, msg: SiteMessage, event_id: str) -> None:
        """A site's report: its baseline per interval reported; the last one is what its
        telemetry is measured against from now on where it states none."""
        run = self.runs.get(event_id)
        leg = run.legs.get(msg.site_id) if run is not None else None
        if run is None or leg is None:
            return
        for iv in msg.payload.get("intervals") or []:
            base, start = iv.get("baseline_kw"), iv.get("start")
            k = run.interval_at(datetime.fromisoformat(start)) if isinstance(start, str) else None
            if k is not None and isinstance(base, float | int):
                leg.baselines[k] = float(base)
        if not leg.baselines:
            return
        leg.reference_kw = leg.baselines[max(leg.baselines)]
        leg.reported_baseline, leg.reported_at = True, self.clock.now()
        self.store.put_run(run)

    # -- follow-up, reports, completion (every tick) ---------------------------------------

    def tick(self) -> None:
        """Plan what a kill left unplanned; follow every live run: re-allocate what fails,
        report ended intervals, complete."""
        now = self.clock.now()
        if any(s.offer is not None for s in self.book.sites.values()):
            for unplanned in list(self.states.values()):
                # `received` stored, killed before the answer: plan it now (once the sites'
                # offers are in again), the grid gets its opt_in or opt_out.
                if unplanned.status == "received" and now < unplanned.event.end:
                    log.info("fleet_event_resumed", event_id=unplanned.event_id)
                    self._plan(unplanned, now)
        for run in list(self.runs.values()):
            if run.done:
                continue
            state = self.states.get(run.event_id)
            if state is None or state.status != "opt_in":
                continue
            self._follow(run, now)
            self._report(run, state, now)

    def _follow(self, run: EventRun, now: datetime) -> None:
        failing = failures(run, self.book, now, self.fleet.allocation)
        owed = deficits(run, self.book, now, self.fleet.allocation)
        if not failing and not owed:
            return
        for f in failing:
            leg = run.legs[f.site_id]
            leg.failed, leg.limit_kw, leg.record = f.why, f.limit_kw, f.record
            log.warning("fleet_site_failed", event_id=run.event_id, site=f.site_id, why=f.why)
        for site_id, kw in owed.items():
            run.legs[site_id].deficit_kw, run.legs[site_id].deficit_at = kw, now
            log.warning("fleet_site_deficit", event_id=run.event_id, site=site_id, deficit_kw=kw)
        first = run.next_interval(now)
        lost = [s for s, leg in run.legs.items() if leg.limit_kw == 0.0]
        running = run.interval_at(now)
        if (owed or any(f.limit_kw == 0.0 for f in failing)) and running is not None:
            # A site gone (offline, opted out) is gone for the rest of the running interval
            # too: the others are asked its part (and its deficit) from now on
            # (modifications of their current value), so that the interval's mean holds.
            # Its own value there is kept: it delivered it until now.
            first = running
        if first is None:
            self.store.put_run(run)
            return
        run.revision += 1
        alloc = self._allocate(run, first, now, keep=True)
        self._apply(run, alloc, first, now, keep=set(lost))

    def _report(self, run: EventRun, state: EventState, now: datetime) -> None:
        n = len(run.starts)
        reports = self.store.site_reports(run.event_id)
        ready = run.reported
        while ready < n and now >= run.ends[ready]:
            if (
                not reported_by_all(run, ready, reports, self.book)
                and now < run.ends[ready] + REPORT_GRACE
            ):
                break
            ready += 1
        if ready == run.reported:
            return
        run.reported = ready
        rows = self.rows(run, reports)
        district = [r for r in rows if r.site_id == self.fleet.district_id and r.k < ready]
        report = district_report(run, district, state.event.program)
        self.up.send_report(report)
        self.store.put_sent("report", run.event_id, None, report)
        if ready == n:
            self._complete(run, state, rows, now)
        self.store.put_run(run)

    def rows(self, run: EventRun, reports: dict[str, dict[str, Any]] | None = None) -> list[Row]:
        """The settlement rows of every ended interval of `run`."""
        reports = self.store.site_reports(run.event_id) if reports is None else reports
        out: list[Row] = []
        for k in range(run.reported):
            out += interval_rows(run, k, self.book, reports, self.fleet.district_id)
        return out

    def _complete(self, run: EventRun, state: EventState, rows: list[Row], now: datetime) -> None:
        new_state, response = completed(state, now)
        self._put_state(new_state)
        self._answer(response)
        run.done = True
        for site_id, leg in run.legs.items():
            if any(leg.values) and leg.status != "opt_out":
                self.rests[site_id] = run.ends[-1]
                self.store.put_rest(site_id, run.ends[-1])
        if self.settlement is not None:  # one file for every event, in the order they end
            self.csv_written.append(write_csv(self.settlement, run, rows, append=True))
        else:
            path = self.fleet.data_dir / f"settlement-{run.event_id}.csv"
            self.csv_written.append(write_csv(path, run, rows))

    # -- storage and answers ----------------------------------------------------------------

    def _put_state(self, state: EventState) -> None:
        self.states[state.event_id] = state
        self.store.put_event(state)

    def _answer(self, response: Response) -> None:
        self.store.put_sent(
            "response", response.event_id, response.status, response.model_dump(mode="json")
        )
        self.up.send_response(response)
