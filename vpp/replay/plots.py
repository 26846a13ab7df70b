"""The replay's PNG plots, drawn from a finished run's store (matplotlib, Agg, no pyplot
state): site import against baseline and counterfactual with the result written on it
(`site_import.png`, the main plot: vpp.replay.site_plot), stacked power per device kind
with the event windows edged (`power_by_kind.png`), battery state of charge
(`battery_soc.png`), each zone's temperature in its comfort band (`zone_temperatures.png`)
and each charging session's energy needed and received (`ev_energy.png`).

Deterministic: fixed size and dpi, times in the scenario's local time, and no software or
date metadata in the files. Power in kW, consumption positive.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from devices.profile import Kind
from vpp.measure import BaselineResult, EventReport
from vpp.replay import readings as rd
from vpp.replay.plotdata import SIZE_IN, PlotData, figure, save
from vpp.replay.scenario import EvSession, Scenario
from vpp.replay.site_plot import plot_site_import
from vpp.replay.summary import event_baselines, event_reports
from vpp.store.store import Store

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


def kind_power(d: PlotData) -> dict[str, list[float]]:
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


def plot_power_by_kind(d: PlotData, path: Path) -> Path:
    """Stacked power per device kind (consumption above zero, PV and discharge below)."""
    fig, (ax,) = figure()
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
    d.mark(ax)  # edges and a top band: the stack keeps its colours in the window
    ax.axhline(0.0, color="black", lw=0.5)
    d.frame(ax, "power (kW, + drawn)")
    ax.set_title("power by device kind")
    ax.legend(loc="upper left", fontsize=8, ncol=4)
    return save(fig, path)


def plot_battery_soc(d: PlotData, path: Path) -> Path:
    """Each battery's state of charge and its reserve."""
    fig, (ax,) = figure()
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
    return save(fig, path)


def plot_zones(d: PlotData, path: Path) -> Path:
    """Each zone's temperature against its comfort band."""
    zones = rd.zone_inputs(d.store, d.sc, d.sc.start, d.sc.end, d.step)
    rows = max(1, len(zones))
    fig, axes = figure(height=max(SIZE_IN[1], 1.8 * rows), rows=rows)
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
    return save(fig, path)


def session_labels(sessions: list[EvSession], sc: Scenario) -> list[str]:
    """A bar's label per session: its charger and visit number there, then its stay in
    local time (with the weekday when the run spans days)."""
    visit: dict[str, int] = {}
    labels = []
    for s in sessions:
        visit[s.charger] = visit.get(s.charger, 0) + 1
        a, b = s.arrival.astimezone(sc.tz), s.departure.astimezone(sc.tz)
        day = f"{a:%a} " if sc.duration > timedelta(days=1) else ""
        labels.append(f"{s.charger} #{visit[s.charger]}\n{day}{a:%H:%M}-{b:%H:%M}")
    return labels


def plot_ev_energy(d: PlotData, path: Path) -> Path:
    """Each charging session that ended during the run (a vehicle's visit: charger,
    arrival, departure, need, from the scenario's visits the simulator served): the energy
    it needed beside the energy it received by departure, both labelled in kWh; a session
    left short is drawn in red."""
    fig, (ax,) = figure()
    deliveries = [
        (s, g) for s, g in rd.ev_deliveries(d.store, d.sc, d.step) if s.departure <= d.sc.end
    ]
    labels = session_labels([s for s, _ in deliveries], d.sc)
    xs = list(range(len(deliveries)))
    need = [s.energy_needed_kwh for s, _ in deliveries]
    got = [g for _, g in deliveries]
    short = [g < n - 0.05 for n, g in zip(need, got, strict=True)]
    w = 0.4
    ax.bar([x - w / 2 for x in xs], need, width=w, color="#d9f0d3", edgecolor="#1b7837",
           label="needed")  # fmt: skip
    ax.bar(
        [x + w / 2 for x in xs],
        got,
        width=w,
        color=["#d6604d" if s else "#1b7837" for s in short],
        label="received by departure",
    )
    small = len(xs) > 16
    if not small:
        for x, n, g in zip(xs, need, got, strict=True):
            ax.text(x - w / 2, n, f"{n:.1f}", ha="center", va="bottom", fontsize=7)
            ax.text(x + w / 2, g, f"{g:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, labels, fontsize=6 if small else 8)
    if not deliveries:
        ax.text(0.5, 0.5, "no vehicle left during the run", ha="center", transform=ax.transAxes)
    else:
        ax.set_ylim(0, max(need + got) * 1.15 or 1.0)
    ax.set_ylabel("energy (kWh)")
    ax.grid(True, axis="y", alpha=0.3)
    n_short = sum(short)
    ax.set_title(
        f"EV sessions: energy needed and received ({n_short} of {len(short)} short)"
        if deliveries
        else "EV sessions: energy needed and received"
    )
    ax.legend(loc="upper left", fontsize=8)
    return save(fig, path)


def write_plots(
    out_dir: str | Path,
    store: Store | str | Path,
    scenario: Scenario,
    *,
    counterfactual: Store | str | Path | None = None,
    baselines: dict[str, BaselineResult] | None = None,
    reports: dict[str, EventReport] | None = None,
    ylim: tuple[float, float] | None = None,
) -> list[Path]:
    """Write the five PNGs into `out_dir`; returns their paths (in `PLOT_FILES` order).
    `ylim`: the site import plot's y range (kW), e.g. one shared by compared runs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    st = rd.open_store(store)
    cf = rd.open_store(counterfactual) if counterfactual is not None else None
    if baselines is None:
        baselines = event_baselines(st, scenario, cf)
    if reports is None:
        reports = event_reports(st, scenario, cf)
    d = PlotData(st, scenario, cf, baselines, reports, ylim)
    draw = (plot_site_import, plot_power_by_kind, plot_battery_soc, plot_zones, plot_ev_energy)
    return [f(d, out / name) for f, name in zip(draw, PLOT_FILES, strict=True)]
