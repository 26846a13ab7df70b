"""`summary.json` of a finished replay, computed from its store.

Per event (the newest modification the scenario sends of each event id): the requested and
delivered kW (duration-weighted means over the event's intervals), the delivered ratio and
the lowest interval ratio (vpp.measure.build_report against the baseline below), degree-hours
of the zones outside their comfort bands over the event, energy the vehicles plugged in
during the event lacked at departure, and the rebound peak in the 2 h after the event.

`oracle_kw`, `feasible_ratio` (per interval), `min_feasible_ratio`, `oracle_fraction`,
`oracle_full_request`:
the delivery against what a perfect-foresight controller could have done
(vpp.replay.feasible, vpp.replay.oracle).

`reported_*`: what the agent's final report said (its delivered ratio, and its settlement
baseline's method and like days), to set beside the measured figures.

Baseline: the counterfactual run's import when one is given (the same scenario without
events), else the site's settlement baseline for the event's program (vpp.measure.settlement,
10-of-10 like days by default) over the store's meter history (generated or replayed days
before the start; other event days and public holidays are left out of the pool).

Run figures: energy cost (import × import price − export × export price, per meter window
at the price of its start), emissions (import × carbon intensity; export earns no credit),
the highest 15-min mean import, the highest rebound peak, unmet EV energy of every vehicle
that left during the run, comfort violation over the whole run, simulated and wall seconds.

Deterministic: keys sorted, floats rounded to 3 decimals (no `-0.0`), so the same store and
scenario give the same bytes (except `wall_s`).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from vpp.grid.messages import Event
from vpp.measure import (
    BaselineResult,
    EventInterval,
    EventReport,
    EventSpec,
    build_report,
    counterfactual_baseline,
    rebound_peak,
    zone_comfort,
)
from vpp.measure.series import DEFAULT_STEP, ceil_to, floor_to
from vpp.measure.settlement import event_busy, settlement_baseline
from vpp.replay import readings as rd
from vpp.replay.feasible import oracle_figures
from vpp.replay.oracle import Oracle
from vpp.replay.scenario import Scenario
from vpp.store.store import Store

DECIMALS = 3
REBOUND_WINDOW = timedelta(hours=2)
SUMMARY_FILE = "summary.json"


def clean(value: Any) -> Any:
    """Floats rounded to `DECIMALS` (no -0.0, NaN/inf → None), recursively."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        r = round(value, DECIMALS)
        return 0.0 if r == 0 else r
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def _weighted_mean(pairs: list[tuple[float | None, float]]) -> float | None:
    known = [(v, w) for v, w in pairs if v is not None]
    total = math.fsum(w for _, w in known)
    return math.fsum(v * w for v, w in known) / total if total > 0 else None


def spec_of(event: Event) -> EventSpec:
    """The measurement's view of a contract event."""
    return EventSpec(
        event.event_id,
        event.modification,
        event.signal,
        tuple(EventInterval(i.start, i.duration, i.value) for i in event.intervals),
        event.program,
    )


class _Run:
    """What every event's measurement shares: store, series, baseline source."""

    def __init__(self, store: Store, scenario: Scenario, counterfactual: Store | None) -> None:
        self.store, self.scenario = store, scenario
        self.step = rd.resolution(scenario)
        sc = scenario
        lookback = timedelta(days=max(sc.config.history_days, 1) + 46)
        self.meter = rd.step_series(
            rd.site_import(store, sc, sc.start - lookback, sc.end), self.step, "site import"
        )
        self.cf = None
        if counterfactual is not None:
            cf = rd.site_import(counterfactual, sc, sc.start - lookback, sc.end)
            self.cf = rd.step_series(cf, self.step, "counterfactual import")
        self.event_days = {e.start.astimezone(sc.tz).date() for e in sc.final_events()}
        self.received: dict[str, datetime] = {}
        for m in sc.event_messages():  # the first message of each event: when it was known
            self.received.setdefault(m.event.event_id, m.send_at)
        self._oracle: Oracle | bool | None = False  # False: not built yet

    def oracle(self) -> Oracle | None:
        """The run's perfect-foresight oracle (built on first use; None when the run is
        beyond it, e.g. longer than the optimiser's horizon)."""
        if self._oracle is False:
            try:
                self._oracle = Oracle(self.scenario)
            except ValueError:
                self._oracle = None
        return self._oracle if isinstance(self._oracle, Oracle) else None

    def baseline(self, event: Event, profile_end: datetime) -> BaselineResult:
        if self.cf is not None:
            return counterfactual_baseline(self.cf, start=event.start, end=profile_end)
        day = event.start.astimezone(self.scenario.tz).date()
        cfg = self.scenario.site.config
        return settlement_baseline(
            self.meter,
            cfg.settlement.program(event.program),
            tz=self.scenario.tz,
            event_start=event.start,
            event_end=event.end,
            calendar=cfg.settlement.calendar(cfg.timezone),
            event_days=self.event_days - {day},
            profile_end=profile_end,
            busy=event_busy(
                self.received.get(event.event_id),
                event.start,
                [
                    (o.event_id, self.received.get(o.event_id), o.start, o.end)
                    for o in self.scenario.final_events()
                    if o.event_id != event.event_id
                ],
                tz=self.scenario.tz,
            ),
        )


def event_baselines(
    store: Store | str | Path,
    scenario: Scenario,
    counterfactual: Store | str | Path | None = None,
) -> dict[str, BaselineResult]:
    """The baseline each event is measured against (as in the summary), by event id; the
    profile runs to the end of the rebound window."""
    st = rd.open_store(store)
    cf = rd.open_store(counterfactual) if counterfactual is not None else None
    run = _Run(st, scenario, cf)
    out = {}
    for ev in scenario.final_events():
        if ev.end <= scenario.end:
            out[ev.event_id] = run.baseline(ev, _profile_end(ev, scenario))
    return out


def _profile_end(event: Event, sc: Scenario) -> datetime:
    rebound_end = min(event.end + REBOUND_WINDOW, floor_to(sc.end, DEFAULT_STEP))
    return max(ceil_to(event.end, DEFAULT_STEP), rebound_end)


def _measured(event: Event, sc: Scenario) -> bool:
    """Whether an event is measured: acted on (not a test, not cancelled) and over by the
    end of the run."""
    return not (event.test or event.cancelled or event.end > sc.end)


def _report(run: _Run, event: Event) -> EventReport:
    sc = run.scenario
    zones = rd.zone_inputs(
        run.store, sc, event.start - timedelta(hours=1), event.end + timedelta(hours=1), run.step
    )
    return build_report(
        spec_of(event),
        baseline=run.baseline(event, _profile_end(event, sc)),
        site=run.meter,
        zones=zones,
        comfort_window=(event.start, event.end),
    )


def event_reports(
    store: Store | str | Path,
    scenario: Scenario,
    counterfactual: Store | str | Path | None = None,
) -> dict[str, EventReport]:
    """The report each measured event's summary figures come from (per interval: requested,
    baseline, actual, delivered, ratio), by event id."""
    st = rd.open_store(store)
    cf = rd.open_store(counterfactual) if counterfactual is not None else None
    run = _Run(st, scenario, cf)
    return {
        ev.event_id: _report(run, ev) for ev in scenario.final_events() if _measured(ev, scenario)
    }


def _event_summary(run: _Run, event: Event, status: str) -> dict[str, Any]:
    sc = run.scenario
    out: dict[str, Any] = {
        "event_id": event.event_id,
        "modification": event.modification,
        "signal": event.signal,
        "start": event.start.astimezone(sc.tz).isoformat(),
        "end": event.end.astimezone(sc.tz).isoformat(),
        "status": status,
        "requested_kw": None,
        "delivered_kw": None,
        "delivered_ratio": None,
        "min_interval_ratio": None,
        "comfort_violation_degC_h": None,
        "unmet_ev_kwh": None,
        "rebound_peak_kw": None,
        "rebound_excess_kw": None,
        "baseline_method": None,
        "oracle_kw": None,
        "feasible_ratio": None,
        "min_feasible_ratio": None,
        "oracle_fraction": None,
        "oracle_full_request": None,
        **_reported(run.store, event.event_id),
    }
    if not _measured(event, sc):
        out["note"] = (
            "test event: not acted on"
            if event.test
            else ("cancelled" if event.cancelled else "ends after the run: not measured")
        )
        return out
    rebound_end = min(event.end + REBOUND_WINDOW, floor_to(sc.end, DEFAULT_STEP))
    report = _report(run, event)
    baseline = report.baseline
    assert baseline is not None
    out.update(report_figures(report))
    out.update(oracle_figures(report, run.oracle()))
    if rebound_end > ceil_to(event.end, DEFAULT_STEP):
        reb = rebound_peak(
            run.meter,
            event_end=ceil_to(event.end, DEFAULT_STEP),
            baseline=baseline,
            window=rebound_end - ceil_to(event.end, DEFAULT_STEP),
        )
        out["rebound_peak_kw"], out["rebound_excess_kw"] = reb.peak_kw, reb.excess_kw
    unmet = [
        rd.ev_unmet_kwh(s, got, sc)
        for s, got in rd.ev_deliveries(run.store, sc, run.step)
        if s.arrival < event.end and s.departure > event.start
    ]
    out["unmet_ev_kwh"] = math.fsum(unmet)
    return out


def report_figures(report: EventReport) -> dict[str, Any]:
    """An event's headline figures in summary.json: requested and delivered kW (means over
    its intervals), delivered ratio, lowest interval ratio, comfort, baseline method."""
    rows = report.intervals
    ratios = [r.ratio for r in rows if r.ratio is not None]
    return {
        "requested_kw": _weighted_mean([(r.requested_kw, r.hours) for r in rows]),
        "delivered_kw": _weighted_mean([(r.delivered_kw, r.hours) for r in rows]),
        "delivered_ratio": report.delivered_ratio,
        "min_interval_ratio": min(ratios) if ratios else None,
        "comfort_violation_degC_h": report.comfort_violation_degc_h,
        "baseline_method": report.baseline_method,
    }


def _reported(store: Store, event_id: str) -> dict[str, Any]:
    """What the agent's final report said: its delivered ratio and its settlement baseline's
    method and like days (`None` without a final report)."""
    finals = store.reports(event_id, final_only=True)
    final = finals[-1] if finals else {}
    ratio = final.get("delivered_ratio")
    details = final.get("details")
    base = details.get("baseline") if isinstance(details, dict) else None
    days = base.get("days_used") if isinstance(base, dict) else None
    return {
        "reported_delivered_ratio": float(ratio) if isinstance(ratio, int | float) else None,
        "reported_baseline_method": final.get("baseline_method"),
        "reported_baseline_days": list(days) if isinstance(days, list) else None,
    }


def run_figures(store: Store, scenario: Scenario, step: timedelta) -> dict[str, Any]:
    """Cost, emissions, energies and peak import of the run (from the meter's windows)."""
    sc = scenario
    samples = rd.site_import(store, sc, sc.start, sc.end)
    times = [t for t, _ in samples]
    h = step.total_seconds() / 3600
    imp, exp = sc.import_prices(times), sc.export_prices(times)
    carbon = sc.carbon(times)
    cost = math.fsum(kw * h * (imp[i] if kw >= 0 else exp[i]) for i, (_, kw) in enumerate(samples))
    emissions = math.fsum(max(kw, 0.0) * h * carbon[i] for i, (_, kw) in enumerate(samples))
    series = rd.step_series(samples, step, "site import")
    end = floor_to(sc.end, DEFAULT_STEP)
    start = ceil_to(sc.start, DEFAULT_STEP)
    peaks = [p.kw for p in series.on_grid(start, end, min_coverage=0.9) if p.kw is not None]
    return {
        "energy_cost": cost,
        "currency": sc.config.prices.currency,
        "emissions_kgco2": emissions,
        "import_kwh": math.fsum(max(kw, 0.0) * h for _, kw in samples),
        "export_kwh": math.fsum(max(-kw, 0.0) * h for _, kw in samples),
        "peak_import_kw": max(peaks) if peaks else None,
        "meter_coverage": len(samples) * step / sc.duration,
    }


def compute_summary(
    store: Store | str | Path,
    scenario: Scenario,
    *,
    strategy: str | None = None,
    wall_s: float = 0.0,
    counterfactual: Store | str | Path | None = None,
) -> dict[str, Any]:
    """The summary of a finished run (see the module docstring); rounded, JSON-ready."""
    st = rd.open_store(store)
    cf = rd.open_store(counterfactual) if counterfactual is not None else None
    run = _Run(st, scenario, cf)
    events = []
    for ev in scenario.final_events():
        stored = st.event(ev.event_id)
        events.append(_event_summary(run, ev, stored.status if stored else "not received"))
    figures = run_figures(st, scenario, run.step)
    zones = rd.zone_inputs(st, scenario, scenario.start, scenario.end, run.step)
    comfort = math.fsum(
        zone_comfort(z, scenario.start, scenario.end).violation_degc_h for z in zones
    )
    deliveries = rd.ev_deliveries(st, scenario, run.step)
    rebounds = [e["rebound_peak_kw"] for e in events if e["rebound_peak_kw"] is not None]
    summary: dict[str, Any] = {
        "scenario": scenario.name,
        "start": scenario.start.isoformat(),
        "end": scenario.end.isoformat(),
        "strategy": strategy or scenario.strategy,
        "seed": scenario.seed,
        "baseline": "counterfactual" if cf is not None else "x_of_y",
        "events": events,
        **figures,
        "rebound_peak_kw": max(rebounds) if rebounds else None,
        "comfort_violation_degC_h": comfort,
        "unmet_ev_kwh": math.fsum(rd.ev_unmet_kwh(s, got, scenario) for s, got in deliveries),
        "ev_sessions": sum(1 for s, _ in deliveries if s.departure <= scenario.end),
        "ev_sessions_open": sum(1 for s, _ in deliveries if s.departure > scenario.end),
        "simulated_s": scenario.duration.total_seconds(),
        "wall_s": wall_s,
    }
    return dict(clean(summary))


def summary_json(summary: dict[str, Any]) -> str:
    """The summary as JSON text: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(clean(summary), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_summary(out_dir: str | Path, summary: dict[str, Any]) -> Path:
    """Write `summary.json` into `out_dir` (created if needed); returns its path."""
    path = Path(out_dir) / SUMMARY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(summary_json(summary))
    return path


def read_summary(path: str | Path) -> dict[str, Any]:
    """A `summary.json` (or the one in directory `path`), e.g. to compare two replays."""
    p = Path(path)
    if p.is_dir():
        p = p / SUMMARY_FILE
    data = json.loads(p.read_text())
    if not isinstance(data, dict) or "events" not in data:
        raise ValueError(f"{p}: not a replay summary")
    return data
