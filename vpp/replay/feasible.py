"""An event's delivery against what was possible: the oracle's figures in summary.json.

Per interval of a measured event (`vpp.replay.oracle` for the least import):

- `oracle_kw`: the largest deliverable reduction, baseline − the oracle's least import over
  the interval (kW, ≥ 0; the baseline is the summary's: the counterfactual's import);
- `feasible_ratio`: delivered ÷ min(requested, oracle_kw). An interval requesting nothing
  (a cap above the baseline) keeps the report's compliance ratio (1 held, 0 not); one where
  the oracle can deliver nothing (under `MIN_KW`) has none.

Per event: `min_feasible_ratio` (the worst interval's) and `oracle_full_request` (whether the
oracle can hold every interval's request at once: caps of baseline − request, or the cap).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vpp.measure import EventReport
from vpp.replay.oracle import Oracle, OracleError

MIN_KW = 0.5
"""A request or an oracle figure below this (kW) gives no ratio: noise, not a delivery."""


def oracle_figures(report: EventReport, oracle: Oracle | None) -> dict[str, Any]:
    """The event's oracle fields for summary.json (all None, with `oracle_note`, when the
    oracle cannot answer for this run)."""
    empty: dict[str, Any] = {
        "oracle_kw": None,
        "feasible_ratio": None,
        "min_feasible_ratio": None,
        "oracle_full_request": None,
    }
    if oracle is None:
        return empty | {"oracle_note": "no oracle for this run"}
    oracle_kw: list[float | None] = []
    ratios: list[float | None] = []
    caps: list[tuple[datetime, datetime, float]] = []
    try:
        for iv in report.intervals:
            end = iv.start + iv.duration
            least = oracle.min_import_kw(iv.start, end)
            if iv.baseline_kw is None:
                oracle_kw.append(None)
                ratios.append(None)
                continue
            possible = max(0.0, iv.baseline_kw - least)
            oracle_kw.append(possible)
            req = iv.requested_kw
            if req is not None and req >= MIN_KW:
                caps.append((iv.start, end, iv.baseline_kw - req))
            if req is None or iv.delivered_kw is None:
                ratios.append(None)
            elif req < MIN_KW:
                ratios.append(iv.ratio)
            elif min(req, possible) < MIN_KW:
                ratios.append(None)
            else:
                ratios.append(iv.delivered_kw / min(req, possible))
        full = oracle.full_request(caps)
    except (OracleError, ValueError) as e:
        return empty | {"oracle_note": str(e)}
    known = [r for r in ratios if r is not None]
    return {
        "oracle_kw": oracle_kw,
        "feasible_ratio": ratios,
        "min_feasible_ratio": min(known) if known else None,
        "oracle_full_request": full,
    }
