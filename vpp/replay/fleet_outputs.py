"""A fleet replay's outputs: `summary.json` (per district event: requested, delivered against
the sum of the sites' counterfactuals, per interval and per site), the messages
(`district_messages.jsonl`, `site_messages.jsonl`) and the plots (`district_import.png`:
district import against baseline and target, stacked by site; `allocation.png`: each site's
allocation per interval).

Delivered in an interval = mean over its minute samples of (Σ counterfactual imports − Σ
imports). For a cap, the request is the counterfactual's import above the cap.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from matplotlib import dates as mdates

from vpp.fleet.allocate import window_for
from vpp.grid.messages import Event
from vpp.grid.offers import Offer
from vpp.grid.parse import parse_message
from vpp.replay.fleet_run import CF, FleetResult
from vpp.replay.fleet_scenario import FleetScenario
from vpp.replay.plotdata import figure, save


def _mean(series: list[tuple[datetime, float]], start: datetime, end: datetime) -> float:
    # A sample at t is the meter at t: the interval [start, end) holds start < t <= end.
    vals = [kw for t, kw in series if start < t <= end]
    return sum(vals) / len(vals) if vals else 0.0


def _sum(res: FleetResult, ids: list[str], start: datetime, end: datetime) -> float:
    return sum(_mean(res.imports[i], start, end) for i in ids)


def _final_events(fs: FleetScenario) -> dict[str, Event]:
    out: dict[str, Event] = {}
    for e in fs.events():
        prev = out.get(e.event.event_id)
        if prev is None or e.event.modification >= prev.modification:
            out[e.event.event_id] = e.event
    return out


def _responses(res: FleetResult, site_id: str, event_prefix: str) -> list[str]:
    return [
        m["msg"].get("status")
        for m in res.site_messages
        if m["topic"].endswith(f"/{site_id}/responses")
        and str(m["msg"].get("event_id", "")).startswith(event_prefix)
    ]


def _offer_used(res: FleetResult, site_id: str, event_id: str) -> Offer | None:
    """The site's latest offer before the district first sent this event to its sites (the
    one its first allocation used)."""
    sent = [
        m["ts"]
        for m in res.site_messages
        if m["topic"].endswith("/events") and m["msg"].get("event_id") == event_id
    ]
    offers = [
        m
        for m in res.site_messages
        if m["topic"].endswith(f"/{site_id}/offers") and (not sent or m["ts"] <= min(sent))
    ]
    return parse_message(Offer, json.dumps(offers[-1]["msg"]).encode()) if offers else None


def event_summary(fs: FleetScenario, res: FleetResult, event: Event) -> dict[str, Any]:
    """One district event's figures (see the module docstring)."""
    ids = [sc.site.id for sc in fs.sites]
    cf_ids = [i + CF for i in ids]
    intervals: list[dict[str, Any]] = []
    for iv in event.intervals:
        end = iv.start + iv.duration
        baseline = _sum(res, cf_ids, iv.start, end)
        actual = _sum(res, ids, iv.start, end)
        requested = iv.value if event.signal == "curtail_kw" else max(0.0, baseline - iv.value)
        delivered = baseline - actual
        ratio = 1.0 if requested <= 1e-9 and delivered >= 0 else delivered / max(requested, 1e-9)
        if event.signal == "import_cap_kw" and actual <= iv.value:
            ratio = max(ratio, 1.0)
        intervals.append(
            {
                "start": iv.start.isoformat(),
                "requested_kw": round(requested, 3),
                "baseline_kw": round(baseline, 3),
                "import_kw": round(actual, 3),
                "delivered_kw": round(delivered, 3),
                "ratio": round(ratio, 4),
            }
        )
    run = res.runs.get(event.event_id)
    n = len(event.intervals)
    start, end = event.intervals[0].start, event.intervals[-1].start + event.intervals[-1].duration
    sites = []
    for sid in ids:
        leg = run.legs.get(sid) if run is not None else None
        offer = _offer_used(res, sid, event.event_id)
        window = window_for(offer, start, end) if offer is not None else None
        statuses = _responses(res, sid, event.event_id)
        sites.append(
            {
                "site_id": sid,
                "offered_kw": window.curtail_kw if window is not None else 0.0,
                "allocated_kw": round(sum(leg.values) / n, 3) if leg is not None else 0.0,
                "allocated_per_interval_kw": list(leg.values) if leg is not None else [],
                "delivered_kw": round(
                    _mean(res.imports[sid + CF], start, end) - _mean(res.imports[sid], start, end),
                    3,
                ),
                "response": statuses[-1] if statuses else None,
                "failed": leg.failed if leg is not None else None,
                "deficit_kw": leg.deficit_kw if leg is not None else 0.0,
            }
        )
    requested = sum(i["requested_kw"] for i in intervals) / n
    delivered = sum(i["delivered_kw"] for i in intervals) / n
    return {
        "event_id": event.event_id,
        "signal": event.signal,
        "requested_kw": round(requested, 3),
        "delivered_kw": round(delivered, 3),
        "delivered_ratio": round(delivered / requested, 4) if requested > 1e-9 else 1.0,
        "min_interval_ratio": min(i["ratio"] for i in intervals),
        "intervals": intervals,
        "sites": sites,
        "revisions": run.revision if run is not None else 0,
    }


def write_fleet_outputs(fs: FleetScenario, res: FleetResult, out: Path) -> dict[str, Any]:
    """summary.json, the messages and the plots in `out`; returns the summary."""
    end = fs.start + fs.duration
    # An event after the end of a shortened run is not summarised (nothing measured).
    events = [
        event_summary(fs, res, e) for e in _final_events(fs).values() if e.intervals[0].start < end
    ]
    summary = {
        "scenario": fs.config.name or fs.source.stem,
        "district_id": fs.config.district_id,
        "sites": [sc.site.id for sc in fs.sites],
        "start": fs.start.isoformat(),
        "duration_s": fs.duration.total_seconds(),
        "counterfactual": "same run, same clock (each site again as SITE-cf, not enrolled)",
        "wall_s": round(res.wall_s, 1),
        "cpu_s": round(res.cpu_s, 1),
        "clock_leaps": res.leaps,
        "hold_timeouts": res.hold_timeouts,
        "events": events,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with (out / "imports.csv").open("w") as f:
        ids = sorted(res.imports)
        f.write("ts," + ",".join(ids) + "\n")
        for k, (t, _) in enumerate(res.imports[ids[0]]):
            f.write(
                t.isoformat() + "," + ",".join(f"{res.imports[i][k][1]:.3f}" for i in ids) + "\n"
            )
    for name, msgs in (("district", res.district_messages), ("site", res.site_messages)):
        with (out / f"{name}_messages.jsonl").open("w") as f:
            for m in sorted(msgs, key=lambda m: m["ts"]):
                f.write(json.dumps(m, sort_keys=True) + "\n")
    plot_district(fs, res, out / "district_import.png")
    plot_allocation(fs, res, out / "allocation.png")
    return summary


def _num(fs: FleetScenario, times: list[datetime]) -> Any:
    """Matplotlib date numbers in the fleet's local time (its start's UTC offset)."""
    return mdates.date2num([t.astimezone(fs.start.tzinfo).replace(tzinfo=None) for t in times])


def _frame(ax: Any, ylabel: str) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)


def plot_district(fs: FleetScenario, res: FleetResult, path: Path) -> Path:
    """The district's import stacked by site, its baseline (Σ counterfactuals), the target."""
    ids = [sc.site.id for sc in fs.sites]
    times = _num(fs, [t for t, _ in res.imports[ids[0]]])
    fig, (ax,) = figure()
    ax.stackplot(times, *[[kw for _, kw in res.imports[i]] for i in ids], labels=ids, alpha=0.7)
    base = [sum(res.imports[i + CF][k][1] for i in ids) for k in range(len(times))]
    ax.plot(times, base, color="black", linewidth=1.5, label="baseline (Σ counterfactuals)")
    for e in _final_events(fs).values():
        for iv in e.intervals:
            end = iv.start + iv.duration
            b = _sum(res, [i + CF for i in ids], iv.start, end)
            target = b - iv.value if e.signal == "curtail_kw" else iv.value
            x0, x1 = _num(fs, [iv.start, end])
            ax.hlines(target, x0, x1, colors="red", linewidth=2)
    ax.plot([], [], color="red", linewidth=2, label="target")
    _frame(ax, "kW")
    ax.set_title(f"{fs.config.district_id}: import by site")
    ax.legend(loc="upper left", fontsize="small", ncol=2)
    return save(fig, path)


def plot_allocation(fs: FleetScenario, res: FleetResult, path: Path) -> Path:
    """Each site's allocation per interval of each district event (stacked bars)."""
    fig, (ax,) = figure()
    ids = [sc.site.id for sc in fs.sites]
    labelled: set[str] = set()
    for e in _final_events(fs).values():
        run = res.runs.get(e.event_id)
        if run is None:
            continue
        starts = _num(fs, run.starts)
        width = 0.9 * (run.ends[0] - run.starts[0]).total_seconds() / 86400
        bottom = [0.0] * len(run.starts)
        for n, sid in enumerate(ids):
            leg = run.legs.get(sid)
            if leg is None:
                continue
            vals = [leg.asked(k) for k in range(len(run.starts))]
            ax.bar(
                starts,
                vals,
                width=width,
                bottom=bottom,
                align="edge",
                color=f"C{n}",
                label=sid if sid not in labelled else None,
            )
            labelled.add(sid)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    _frame(ax, "kW allocated")
    ax.set_title(f"{fs.config.district_id}: allocation per site (final revision)")
    ax.legend(loc="upper left", fontsize="small", ncol=2)
    return save(fig, path)
