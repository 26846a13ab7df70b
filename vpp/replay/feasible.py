"""An event's delivery against what was possible: the oracle's figures in summary.json.

Per interval of a measured event (`vpp.replay.oracle` for the least import):

- `oracle_kw`: the largest deliverable reduction of the interval alone, baseline − the
  oracle's least import over it (kW, ≥ 0; the baseline is the summary's: the
  counterfactual's import). No replay can deliver more (the oracle's honesty);
- `feasible_ratio`: delivered ÷ min(requested, oracle_kw, f·requested), f being the event's
  `oracle_fraction`: the largest share of every interval's request the oracle holds in all
  of them at once (1 when the full request is feasible, so that the ratio is then delivered
  ÷ requested; below 1 an interval is judged on what could be held throughout, not on what
  it could give by starving the others). An interval requesting nothing (a cap above the
  baseline) keeps the report's compliance ratio (1 held, 0 not); one where the request or
  the possible delivery is under `MIN_KW` has none.

Per event: `min_feasible_ratio` (the worst interval's), `oracle_fraction` and
`oracle_full_request` (f = 1: every interval's request can be held at once).
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
        "oracle_fraction": None,
        "oracle_full_request": None,
    }
    if oracle is None:
        return empty | {"oracle_note": "no oracle for this run"}
    oracle_kw: list[float | None] = []
    asks: list[tuple[datetime, datetime, float, float]] = []
    relaxed_before = len(oracle.relaxed)
    try:
        for iv in report.intervals:
            end = iv.start + iv.duration
            least = oracle.min_import_kw(iv.start, end)
            base, req = iv.baseline_kw, iv.requested_kw
            oracle_kw.append(None if base is None else max(0.0, base - least))
            if base is not None and req is not None and req >= MIN_KW:
                asks.append((iv.start, end, base, req))
        fraction = oracle.event_fraction(asks)
    except (OracleError, ValueError) as e:
        return empty | {"oracle_note": str(e)}
    ratios: list[float | None] = []
    for iv, possible in zip(report.intervals, oracle_kw, strict=True):
        req, got = iv.requested_kw, iv.delivered_kw
        if req is None or got is None or possible is None:
            ratios.append(None)
        elif req < MIN_KW:
            ratios.append(iv.ratio)
        else:
            due = min(req, possible, fraction * req)
            ratios.append(got / due if due >= MIN_KW else None)
    known = [r for r in ratios if r is not None]
    note = {}
    relaxed = oracle.relaxed[relaxed_before:]  # this event's solves (cached ones are earlier)
    if relaxed:
        note["oracle_note"] = (
            f"{len(relaxed)} all-or-nothing MIP solve(s) not optimal ({relaxed[0]}): "
            "their LP relaxation used, an upper bound"
        )
    return note | {
        "oracle_kw": oracle_kw,
        "feasible_ratio": ratios,
        "min_feasible_ratio": min(known) if known else None,
        "oracle_fraction": fraction,
        "oracle_full_request": fraction >= 1.0,
    }
