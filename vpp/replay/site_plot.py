"""`site_import.png`, the main plot: the site's import against the baseline and the
counterfactual, the target, the delivered reduction filled, each event's result written on
it; and `compare.png`, two or more runs of one scenario overlaid on one scale."""

from __future__ import annotations

from datetime import datetime, tzinfo
from pathlib import Path

from matplotlib.axes import Axes

from vpp.grid.messages import Event
from vpp.measure import BaselineResult, EventReport
from vpp.replay.plotdata import PlotData, figure, save
from vpp.replay.summary import report_figures


def result_line(report: EventReport, tz: tzinfo) -> str:
    """An event's result in one line: asked, delivered, ratio and the worst interval."""
    f = report_figures(report)
    worst = min(
        (r for r in report.intervals if r.ratio is not None),
        key=lambda r: r.ratio if r.ratio is not None else 0.0,
        default=None,
    )
    head = report.event_id
    if report.intervals:
        a = report.intervals[0].start.astimezone(tz)
        b = (report.intervals[-1].start + report.intervals[-1].duration).astimezone(tz)
        head += f" {a:%H:%M}-{b:%H:%M}"
    if f["requested_kw"] is None or f["delivered_ratio"] is None:
        return f"{head}: {report.signal}, nothing requested in kW"
    text = (
        f"{head}: asked {f['requested_kw']:.0f} kW, delivered {f['delivered_kw']:.0f} kW"
        f" ({f['delivered_ratio']:.0%})"
    )
    if worst is not None and worst.ratio is not None:
        text += f", worst interval {worst.start.astimezone(tz):%H:%M} {worst.ratio:.0%}"
    return text


def site_import_range(d: PlotData) -> tuple[float, float]:
    """The y range that shows every series of `site_import.png` (kW), with a margin."""
    values = [v for _, v in d.meter] + [v for _, v in d.cf]
    for base in d.baselines.values():
        values += [p.kw for p in base.adjusted if p.kw is not None]
    for ev in d.events:
        if ev.signal in ("import_cap_kw", "import_target_kw"):
            values += [iv.value for iv in ev.intervals]
        elif ev.signal == "export_cap_kw":
            values += [-iv.value for iv in ev.intervals]
    if not values:
        return (0.0, 1.0)
    lo, hi = min(min(values), 0.0), max(values)
    pad = 0.08 * (hi - lo or 1.0)
    return (lo - pad, hi + 2.5 * pad)  # room at the top for the result box


def plot_site_import(d: PlotData, path: Path) -> Path:
    """Site import against the baseline and the counterfactual, targets dashed, the
    delivered reduction filled, events shaded; each event's result written on the plot."""
    fig, (ax,) = figure()
    d.shade(ax)
    first_base = first_target = True
    for ev in d.events:
        base = d.baselines.get(ev.event_id)
        if base is not None and base.adjusted:
            xs: list[float] = []
            ys: list[float] = []
            for p in base.adjusted:
                if p.kw is not None:
                    xs += [d.local(p.start), d.local(p.end)]
                    ys += [p.kw, p.kw]
            # Wide and pale, under the counterfactual: both stay visible where they agree.
            ax.plot(
                xs,
                ys,
                color="#f4a582",
                lw=5.0,
                alpha=0.8,
                solid_capstyle="butt",
                label=f"baseline ({base.method})" if first_base else None,
                zorder=2,
            )
            first_base = False
            _fill_delivered(ax, d, ev, base)
        if ev.signal in ("price", "carbon"):
            continue
        for iv in ev.intervals:
            level = -iv.value if ev.signal == "export_cap_kw" else iv.value
            if ev.signal == "curtail_kw":
                b = baseline_at(base, iv.start, iv.end)
                if b is None:
                    continue
                level = b - iv.value
            ax.plot(
                [d.local(iv.start), d.local(iv.end)],
                [level, level],
                color="#b2182b",
                lw=2.0,
                ls="--",
                label="target" if first_target else None,
                zorder=4,
            )
            first_target = False
    if d.cf:
        ax.plot(
            d.xs(d.cf),
            [v for _, v in d.cf],
            color="#4d4d4d",
            lw=1.1,
            ls=(0, (4, 2)),
            label="counterfactual (no event)",
            zorder=3,
        )
    ax.plot(
        d.xs(d.meter),
        [v for _, v in d.meter],
        color="#1f3b73",
        lw=1.2,
        label="site import",
        zorder=5,
    )
    d.frame(ax, "site import (kW)")
    ax.set_ylim(*(d.ylim or site_import_range(d)))
    lines = [result_line(r, d.sc.tz) for _, r in sorted(d.reports.items())]
    if lines:
        ax.text(
            0.99,
            0.97,
            "\n".join(
                lines[:4]
                + ([f"... {len(lines) - 4} more in summary.json"] if len(lines) > 4 else [])
            ),
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=9,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.9, "edgecolor": "#999999"},
            zorder=6,
        )
    ax.set_title(f"{d.sc.name}: site import ({d.sc.tz.key} time)")
    ax.legend(loc="upper left", fontsize=8)
    return save(fig, path)


def _fill_delivered(ax: Axes, d: PlotData, ev: Event, base: BaselineResult) -> None:
    """Fill between the baseline and the site import over the event: the reduction."""
    inside = [(t, v) for t, v in d.meter if ev.start <= t < ev.end]
    if not inside or ev.signal in ("price", "carbon", "export_cap_kw"):
        return
    xs = d.xs(inside)
    bs = [baseline_at(base, t, t + d.step) for t, _ in inside]
    pairs = [(x, b, v) for x, b, (_, v) in zip(xs, bs, inside, strict=True) if b is not None]
    if not pairs:
        return
    ax.fill_between(
        [x for x, _, _ in pairs],
        [b for _, b, _ in pairs],
        [v for _, _, v in pairs],
        color="#5aae61",
        alpha=0.25,
        lw=0,
        label="delivered" if ev == d.events[0] else None,
        zorder=1,
    )


def baseline_at(base: BaselineResult | None, start: datetime, end: datetime) -> float | None:
    if base is None:
        return None
    vals = [
        (p.kw, (min(p.end, end) - max(p.start, start)).total_seconds())
        for p in base.adjusted
        if p.kw is not None and p.start < end and p.end > start
    ]
    total = sum(w for _, w in vals)
    return sum(v * w for v, w in vals) / total if total > 0 else None


_RUN_COLOURS = ("#1f3b73", "#e08214", "#2d9e5a", "#8e44ad")


def shared_range(runs: list[PlotData]) -> tuple[float, float]:
    """One y range (kW) showing every run's site import plot."""
    ranges = [site_import_range(d) for d in runs]
    return (min(lo for lo, _ in ranges), max(hi for _, hi in ranges))


def plot_comparison(runs: list[tuple[str, PlotData]], path: Path) -> Path:
    """Runs of one scenario overlaid on one scale: each run's site import (solid) and its own
    counterfactual (dotted, same colour; each strategy is measured against its own), the
    events shaded and each run's result written on it."""
    fig, (ax,) = figure()
    first = runs[0][1]
    first.shade(ax)
    lines = []
    for (label, d), colour in zip(runs, _RUN_COLOURS, strict=False):
        if d.cf:
            ax.plot(
                d.xs(d.cf),
                [v for _, v in d.cf],
                color=colour,
                lw=1.0,
                ls=":",
                label=f"{label}: counterfactual (no event)",
            )
        ax.plot(d.xs(d.meter), [v for _, v in d.meter], color=colour, lw=1.3, label=label)
        lines += [f"{label}: {result_line(r, d.sc.tz)}" for _, r in sorted(d.reports.items())]
    first.frame(ax, "site import (kW)")
    ax.set_ylim(*shared_range([d for _, d in runs]))
    if lines:
        ax.text(
            0.99,
            0.97,
            "\n".join(lines[:6]),
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.9, "edgecolor": "#999999"},
        )
    names = " vs ".join(label for label, _ in runs)
    ax.set_title(f"{first.sc.name}: site import, {names} ({first.sc.tz.key} time)")
    ax.legend(loc="upper left", fontsize=8)
    return save(fig, path)
