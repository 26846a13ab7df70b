"""Everything computed from a finished run's store, written into the output directory:
`summary.json`, `series.csv` (the 15-min series) and the five PNG plots. The harness writes
the store, the grid messages (JSON lines) and the reports itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vpp.replay import readings as rd
from vpp.replay.intervals import interval_rows, write_series
from vpp.replay.plots import write_plots
from vpp.replay.scenario import Scenario
from vpp.replay.summary import compute_summary, event_baselines, event_reports, write_summary
from vpp.store.store import Store


def write_outputs(
    out_dir: str | Path,
    store: Store | str | Path,
    scenario: Scenario,
    *,
    strategy: str | None = None,
    wall_s: float = 0.0,
    counterfactual: Store | str | Path | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Compute the summary and the 15-min series (and the plots unless `plots=False`) into
    `out_dir`; returns the summary. The event reports are computed once and shared
    by the series and the plots."""
    st = rd.open_store(store)
    cf = rd.open_store(counterfactual) if counterfactual is not None else None
    summary = compute_summary(st, scenario, strategy=strategy, wall_s=wall_s, counterfactual=cf)
    write_summary(out_dir, summary)
    reports = event_reports(st, scenario, cf)
    write_series(out_dir, interval_rows(st, scenario, reports, cf), scenario)
    if plots:
        write_plots(
            out_dir,
            st,
            scenario,
            counterfactual=cf,
            baselines=event_baselines(st, scenario, cf),
            reports=reports,
        )
    return summary
