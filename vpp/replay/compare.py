"""`vpp replay --compare`: the runs' site import plots redrawn on one shared scale, and
`compare.png`, the runs overlaid, written into every run's folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from vpp.replay import readings as rd
from vpp.replay.plotdata import PlotData
from vpp.replay.runner import COUNTERFACTUAL, STORE
from vpp.replay.scenario import Scenario
from vpp.replay.site_plot import plot_comparison, plot_site_import, shared_range
from vpp.replay.summary import event_baselines, event_reports

COMPARE_FILE = "compare.png"


def _run_data(scenario: Scenario, out: Path) -> PlotData:
    store = rd.open_store(out / STORE)
    cf_path = out / COUNTERFACTUAL / STORE
    cf = rd.open_store(cf_path) if cf_path.is_file() else None
    return PlotData(
        store,
        scenario,
        cf,
        event_baselines(store, scenario, cf),
        event_reports(store, scenario, cf),
    )


def write_comparison(scenario: Scenario, runs: list[tuple[str, Path]]) -> list[Path]:
    """For replays of `scenario` (label, output folder), redraw each `site_import.png` on
    the shared y range and write `compare.png` into each folder; returns the compare files."""
    data = [(label, _run_data(scenario, out)) for label, out in runs]
    ylim = shared_range([d for _, d in data])
    for (_, d), (_, out) in zip(data, runs, strict=True):
        d.ylim = ylim
        plot_site_import(d, out / "site_import.png")
    first = plot_comparison(data, runs[0][1] / COMPARE_FILE)
    copies = [first]
    for _, out in runs[1:]:
        copies.append(Path(shutil.copyfile(first, out / COMPARE_FILE)))
    return copies
