"""What every replay plot shares: the figure (fixed size and dpi, Agg, no pyplot state),
saving without metadata, and the run's series read once (`PlotData`), with times on the x
axis in the scenario's local time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import ValidationError

from vpp.grid.messages import Event
from vpp.measure import BaselineResult, EventReport
from vpp.replay import readings as rd
from vpp.replay.scenario import Scenario
from vpp.store.store import Store

SIZE_IN = (12.0, 5.0)
DPI = 100


def figure(height: float = SIZE_IN[1], rows: int = 1) -> tuple[Figure, list[Axes]]:
    """A figure of the plots' width with `rows` axes stacked."""
    fig = Figure(figsize=(SIZE_IN[0], height), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, 1, i + 1) for i in range(rows)]
    return fig, axes


def save(fig: Figure, path: Path) -> Path:
    """Write a PNG without software or date metadata (the same run gives the same bytes)."""
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


class PlotData:
    """The series every plot needs, read once."""

    def __init__(
        self,
        store: Store,
        scenario: Scenario,
        counterfactual: Store | None,
        baselines: dict[str, BaselineResult],
        reports: dict[str, EventReport] | None = None,
        ylim: tuple[float, float] | None = None,
    ) -> None:
        self.store, self.sc = store, scenario
        self.reports = reports or {}
        self.ylim = ylim
        self.step = rd.resolution(scenario)
        self.max_gap = 3 * self.step  # longer without a sample: the device was offline
        self.meter = rd.site_import(store, scenario, scenario.start, scenario.end)
        self.cf = (
            rd.site_import(counterfactual, scenario, scenario.start, scenario.end)
            if counterfactual is not None
            else []
        )
        self.baselines = baselines
        self.events = events_of(store, scenario)

    def local(self, t: datetime) -> float:
        """The x coordinate of `t`: its local wall time as a matplotlib date number."""
        return float(mdates.date2num(t.astimezone(self.sc.tz).replace(tzinfo=None)))

    def xs(self, samples: Sequence[tuple[datetime, float]]) -> list[float]:
        return [self.local(t + self.step / 2) for t, _ in samples]

    def mark(self, ax: Axes, label: bool = True) -> None:
        """Event windows as edges and a band along the top, leaving the data under them
        at full colour (a shade over a stack washes it out)."""
        for i, ev in enumerate(self.events):
            a, b = self.local(ev.start), self.local(ev.end)
            ax.axvspan(
                a,
                b,
                ymin=0.96,
                ymax=1.0,
                color="#d6604d",
                lw=0,
                label="event" if label and i == 0 else None,
            )
            for x in (a, b):
                ax.axvline(x, color="#d6604d", lw=1.0, ls="--")

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


def events_of(store: Store, scenario: Scenario) -> list[Event]:
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
