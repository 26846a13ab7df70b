"""The replay's PNG plots, drawn from a finished run's store (matplotlib, Agg, no pyplot
state): site import against baseline and counterfactual with event windows shaded and the
target drawn (`site_import.png`, the main plot), stacked power per device kind
(`power_by_kind.png`), battery state of charge (`battery_soc.png`), each zone's temperature
in its comfort band (`zone_temperatures.png`) and each vehicle's energy against its need
(`ev_energy.png`).

Deterministic: fixed size and dpi, times in the scenario's local time, and no software or
date metadata in the files. Power in kW, consumption positive.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import ValidationError

from devices.profile import Kind
from vpp.grid.messages import Event
from vpp.measure import BaselineResult
from vpp.replay import readings as rd
from vpp.replay.scenario import Scenario
from vpp.replay.summary import event_baselines
from vpp.store.store import Store

SIZE_IN = (12.0, 5.0)
DPI = 100
PLOT_FILES = (
    "site_import.png",
    "power_by_kind.png",
    "battery_soc.png",
    "zone_temperatures.png",
    "ev_energy.png",
)
_KIND_ORDER = (Kind.hvac, Kind.ev_charger, Kind.curtailable_load, Kind.battery, Kind.pv)
_COLOURS = {
    "base load": "#9e9e9e",
    Kind.hvac.value: "#1f77b4",
    Kind.ev_charger.value: "#2ca02c",
    Kind.curtailable_load.value: "#ff7f0e",
    Kind.battery.value: "#9467bd",
    Kind.pv.value: "#e6c300",
}


def _figure(height: float = SIZE_IN[1], rows: int = 1) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(SIZE_IN[0], height), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, 1, i + 1) for i in range(rows)]
    return fig, axes


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


class _Data:
    """The series every plot needs, read once."""

    def __init__(
        self,
        store: Store,
        scenario: Scenario,
        counterfactual: Store | None,
        baselines: dict[str, BaselineResult],
    ) -> None:
        self.store, self.sc = store, scenario
        self.step = rd.resolution(scenario)
        self.max_gap = 3 * self.step  # longer without a sample: the device was offline
        self.meter = rd.site_import(store, scenario, scenario.start, scenario.end)
        self.cf = (
            rd.site_import(counterfactual, scenario, scenario.start, scenario.end)
            if counterfactual is not None
            else []
        )
        self.baselines = baselines
        self.events = _events(store, scenario)

    def local(self, t: datetime) -> float:
        """The x coordinate of `t`: its local wall time as a matplotlib date number."""
        return float(mdates.date2num(t.astimezone(self.sc.tz).replace(tzinfo=None)))

    def xs(self, samples: Sequence[tuple[datetime, float]]) -> list[float]:
        return [self.local(t + self.step / 2) for t, _ in samples]

    def shade(self, ax: Axes, label: bool = True) -> None:
        for i, ev in enumerate(self.events):
            ax.axvspan(
                self.local(ev.start),
                self.local(ev.end),
                color="#f4a582",
                alpha=0.3,
                lw=0,
                label="event" if label and i == 0 else None,
            )

    def frame(self, ax: Axes, ylabel: str) -> None:
        ax.set_xlim(self.local(self.sc.start), self.local(self.sc.end))
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)


def _events(store: Store, scenario: Scenario) -> list[Event]:
    """Events to shade: those in the store's events table (not cancelled, not test), else
    the scenario's."""
    out = []
    for stored in store.events():
        if stored.status == "cancelled":
            continue
        try:
            ev = Event.model_validate(stored.payload)
        except ValidationError:
            continue
        if not ev.test and not ev.cancelled:
            out.append(ev)
    if not out:
        out = [e for e in scenario.final_events() if not e.test and not e.cancelled]
    return sorted(out, key=lambda e: (e.start, e.event_id))


def plot_site_import(d: _Data, path: Path) -> Path:
    """Site import, baseline, counterfactual and targets; events shaded."""
    fig, (ax,) = _figure()
    d.shade(ax)
    if d.cf:
        ax.plot(
            d.xs(d.cf),
            [v for _, v in d.cf],
            color="#7f7f7f",
            lw=1.2,
            ls="--",
            label="counterfactual",
        )
    ax.plot(d.xs(d.meter), [v for _, v in d.meter], color="#1f3b73", lw=1.0, label="site import")
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
            ax.plot(xs, ys, color="#d6604d", lw=1.6, label="baseline" if first_base else None)
            first_base = False
        if ev.signal == "price":
            continue
        for iv in ev.intervals:
            level = iv.value
            if ev.signal == "curtail_kw":
                b = _baseline_at(base, iv.start, iv.end)
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
            )
            first_target = False
    d.frame(ax, "site import (kW)")
    ax.set_title(f"{d.sc.name}: site import ({d.sc.tz.key} time)")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def _baseline_at(base: BaselineResult | None, start: datetime, end: datetime) -> float | None:
    if base is None:
        return None
    vals = [
        (p.kw, (min(p.end, end) - max(p.start, start)).total_seconds())
        for p in base.adjusted
        if p.kw is not None and p.start < end and p.end > start
    ]
    total = sum(w for _, w in vals)
    return sum(v * w for v, w in vals) / total if total > 0 else None


def kind_power(d: _Data) -> dict[str, list[float]]:
    """Power per device kind on the meter's windows, plus `base load` = meter − devices."""
    times = [t for t, _ in d.meter]
    index = {t: i for i, t in enumerate(times)}
    out: dict[str, list[float]] = {}
    for kind in _KIND_ORDER:
        devices = d.sc.site.by_kind(kind)
        if not devices:
            continue
        col = [0.0] * len(times)
        for dev in devices:
            for t, v in rd.points(d.store, dev.id, "power_kw", d.sc.start, d.sc.end):
                i = index.get(t)
                if i is not None:
                    col[i] += v
        out[kind.value] = col
    base = [kw - sum(col[i] for col in out.values()) for i, (_, kw) in enumerate(d.meter)]
    return {"base load": base, **out}


def plot_power_by_kind(d: _Data, path: Path) -> Path:
    """Stacked power per device kind (consumption above zero, PV and discharge below)."""
    fig, (ax,) = _figure()
    cols = kind_power(d)
    xs = d.xs(d.meter)
    if xs:
        names = list(cols)
        colours = [_COLOURS.get(n, "#333333") for n in names]
        ax.stackplot(
            xs,
            *[[max(v, 0.0) for v in cols[n]] for n in names],
            colors=colours,
            labels=names,
            alpha=0.85,
        )
        ax.stackplot(
            xs, *[[min(v, 0.0) for v in cols[n]] for n in names], colors=colours, alpha=0.7
        )
        ax.plot(xs, [v for _, v in d.meter], color="black", lw=0.8, label="site import")
    d.shade(ax)  # over the stack, so the event shows through
    ax.axhline(0.0, color="black", lw=0.5)
    d.frame(ax, "power (kW, + drawn)")
    ax.set_title("power by device kind")
    ax.legend(loc="upper left", fontsize=8, ncol=4)
    return _save(fig, path)


def plot_battery_soc(d: _Data, path: Path) -> Path:
    """Each battery's state of charge and its reserve."""
    fig, (ax,) = _figure()
    d.shade(ax)
    batteries = d.sc.site.by_kind(Kind.battery)
    for dev in batteries:
        soc = rd.gapped(rd.points(d.store, dev.id, "soc_pct", d.sc.start, d.sc.end), d.max_gap)
        ax.plot(d.xs(soc), [v for _, v in soc], lw=1.4, label=f"{dev.id} SoC")
        if dev.config.soc_reserve_pct is not None:
            ax.axhline(
                dev.config.soc_reserve_pct, ls=":", color="#555555", label=f"{dev.id} reserve"
            )
    if not batteries:
        ax.text(0.5, 0.5, "no battery at this site", ha="center", transform=ax.transAxes)
    ax.set_ylim(0, 100)
    d.frame(ax, "state of charge (%)")
    ax.set_title("battery state of charge")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def plot_zones(d: _Data, path: Path) -> Path:
    """Each zone's temperature against its comfort band."""
    zones = rd.zone_inputs(d.store, d.sc, d.sc.start, d.sc.end, d.step)
    rows = max(1, len(zones))
    fig, axes = _figure(height=max(SIZE_IN[1], 1.8 * rows), rows=rows)
    for ax, z in zip(axes, zones, strict=False):
        d.shade(ax, label=False)
        ax.axhspan(z.low_c, z.high_c, color="#a6dba0", alpha=0.35, lw=0, label="comfort band")
        ax.plot(
            [d.local(t) for t, _ in z.temperatures],
            [v for _, v in z.temperatures],
            color="#1f77b4",
            lw=1.2,
            label=z.zone_id,
        )
        d.frame(ax, "degC")
        ax.legend(loc="upper left", fontsize=8)
    if not zones:
        axes[0].text(
            0.5, 0.5, "no thermal zones at this site", ha="center", transform=axes[0].transAxes
        )
    axes[0].set_title("zone temperatures and comfort bands")
    fig.tight_layout()
    return _save(fig, path)


def plot_ev_energy(d: _Data, path: Path) -> Path:
    """Each vehicle that left during the run: energy needed and energy received (kWh)."""
    fig, (ax,) = _figure()
    deliveries = rd.ev_deliveries(d.store, d.sc, d.step)
    labels = [f"{s.charger}\n{s.arrival.astimezone(d.sc.tz):%a %H:%M}" for s, _ in deliveries]
    xs = list(range(len(deliveries)))
    ax.bar(
        xs,
        [s.energy_needed_kwh for s, _ in deliveries],
        color="#d9f0d3",
        edgecolor="#1b7837",
        label="needed",
    )
    ax.bar(
        xs,
        [got for _, got in deliveries],
        width=0.5,
        color="#1b7837",
        label="received by departure",
    )
    ax.set_xticks(xs, labels, fontsize=6 if len(xs) > 16 else 8)
    if not deliveries:
        ax.text(0.5, 0.5, "no vehicle left during the run", ha="center", transform=ax.transAxes)
    ax.set_ylabel("energy (kWh)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title("EV energy against need")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def write_plots(
    out_dir: str | Path,
    store: Store | str | Path,
    scenario: Scenario,
    *,
    counterfactual: Store | str | Path | None = None,
    baselines: dict[str, BaselineResult] | None = None,
) -> list[Path]:
    """Write the five PNGs into `out_dir`; returns their paths (in `PLOT_FILES` order)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    st = rd.open_store(store)
    cf = rd.open_store(counterfactual) if counterfactual is not None else None
    if baselines is None:
        baselines = event_baselines(st, scenario, cf)
    d = _Data(st, scenario, cf, baselines)
    draw = (plot_site_import, plot_power_by_kind, plot_battery_soc, plot_zones, plot_ev_energy)
    return [f(d, out / name) for f, name in zip(draw, PLOT_FILES, strict=True)]
