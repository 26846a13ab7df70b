"""Settlement of a district event, per interval, per site and for the district: baseline
(the site's report's `baseline_kw`; until it reports, the baseline its telemetry stated for
the interval, else the newest it stated or reported, else its import before the event),
delivered (its report's `delivered_kw`; until then, from its telemetry, counted only for
the part of the interval its telemetry covers, or from its meter's feed where its agent
went away within the interval), allocated and
shortfall (allocated − delivered, at least 0). The district's rows are the sums, with the
district's requested kW; they make the district's report upward and the settlement CSV."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpp.fleet.book import FleetBook
from vpp.fleet.follow import baseline_at
from vpp.fleet.run import EventRun, Leg
from vpp.measure.contract import iso_duration

CSV_COLUMNS = (
    "event_id",
    "interval_start",
    "interval_end",
    "site_id",
    "requested_kw",
    "allocated_kw",
    "baseline_kw",
    "delivered_kw",
    "shortfall_kw",
    "source",
)


@dataclass(frozen=True)
class Row:
    """One site's (or the district's) settlement of one interval (kW, interval means)."""

    k: int
    site_id: str
    requested_kw: float | None
    allocated_kw: float
    baseline_kw: float | None
    delivered_kw: float | None
    source: str
    """`report` (the site's report), `telemetry` or `metering` (our estimate from its
    telemetry or its meter's feed), `none` or `sum`."""

    @property
    def shortfall_kw(self) -> float:
        """How far delivery fell short of the allocation (kW, ≥ 0)."""
        target = self.requested_kw if self.requested_kw is not None else self.allocated_kw
        return round(max(0.0, target - (self.delivered_kw or 0.0)), 3)


def _reported(report: dict[str, Any] | None, run: EventRun, k: int) -> dict[str, Any] | None:
    if report is None:
        return None
    start = run.starts[k]
    for iv in report.get("intervals", []):
        if iv.get("start") is not None and _same(iv["start"], start):
            return iv if iv.get("delivered_kw") is not None else None
    return None


def _same(text: str, t: Any) -> bool:
    from datetime import datetime

    return datetime.fromisoformat(text) == t


def site_row(
    run: EventRun, leg: Leg, k: int, book: FleetBook, report: dict[str, Any] | None
) -> Row:
    """The settlement of `leg` in interval `k`."""
    iv = _reported(report, run, k)
    if iv is not None:
        return Row(
            k, leg.site_id, None, leg.asked(k), iv["baseline_kw"], iv["delivered_kw"], "report"
        )
    info, start, end = book.sites[leg.site_id], run.starts[k], run.ends[k]
    ref = info.stated_in(start, end)
    if ref is None:
        ref = baseline_at(leg, info, run, end)
    if ref is None:
        ref = leg.reference_kw
    if ref is None:
        return Row(k, leg.site_id, None, leg.asked(k), None, None, "none")
    ref = round(ref, 3)
    est = info.delivered_kw(ref, start, end)
    metered = info.delivered_kw(ref, start, end, metered=True)
    if metered is not None and (
        est is None or info.online is False or info.covers(start, end) < 0.9
    ):
        # Its agent went away within the interval: its meter shows what it drew all along.
        return Row(k, leg.site_id, None, leg.asked(k), ref, round(metered, 3), "metering")
    if est is not None:
        return Row(k, leg.site_id, None, leg.asked(k), ref, round(est, 3), "telemetry")
    return Row(k, leg.site_id, None, leg.asked(k), ref, None, "none")


def interval_rows(
    run: EventRun, k: int, book: FleetBook, reports: dict[str, dict[str, Any]], district_id: str
) -> list[Row]:
    """Every leg's row of interval `k`, then the district's."""
    rows = [site_row(run, leg, k, book, reports.get(s)) for s, leg in sorted(run.legs.items())]
    bases = [r.baseline_kw for r in rows if r.baseline_kw is not None]
    dlv = [r.delivered_kw for r in rows if r.delivered_kw is not None]
    rows.append(
        Row(
            k,
            district_id,
            run.requested_kw[k],
            round(sum(r.allocated_kw for r in rows), 3),
            round(sum(bases), 3) if bases else None,
            round(sum(dlv), 3) if dlv else None,
            "sum",
        )
    )
    return rows


def reported_by_all(
    run: EventRun, k: int, reports: dict[str, dict[str, Any]], book: FleetBook
) -> bool:
    """Every leg asked something in interval `k` (and still online) has reported it."""
    for s, leg in run.legs.items():
        if leg.asked(k) <= 0 or book.sites[s].online is False or leg.status == "opt_out":
            continue
        if _reported(reports.get(s), run, k) is None:
            return False
    return True


def district_report(run: EventRun, district_rows: list[Row], program: str | None) -> dict[str, Any]:
    """The district's report upward (the contract's fields) over `district_rows`."""
    intervals = []
    for r in district_rows:
        actual = (
            None
            if r.baseline_kw is None or r.delivered_kw is None
            else round(r.baseline_kw - r.delivered_kw, 3)
        )
        intervals.append(
            {
                "start": run.starts[r.k].isoformat(),
                "duration": iso_duration(run.ends[r.k] - run.starts[r.k]),
                "requested_kw": r.requested_kw,
                "baseline_kw": r.baseline_kw,
                "actual_kw": actual,
                "delivered_kw": r.delivered_kw,
            }
        )
    req = sum(r.requested_kw or 0.0 for r in district_rows)
    dlv = sum(r.delivered_kw or 0.0 for r in district_rows)
    return {
        "v": 1,
        "event_id": run.event_id,
        "modification": run.modification,
        "program": program,
        "baseline_method": "sum_of_sites",
        "intervals": intervals,
        "delivered_ratio": round(dlv / req, 4) if req > 0 else None,
        "comfort_violation_degC_h": 0.0,
    }


def write_csv(path: Path, run: EventRun, rows: list[Row], *, append: bool = False) -> Path:
    """The settlement of `run` as CSV (one line per interval and site, the district last);
    with `append`, added to the file's lines (the header written once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = not (append and path.exists() and path.stat().st_size > 0)
    with path.open("a" if append else "w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(CSV_COLUMNS)
        for r in rows:
            w.writerow(
                [
                    run.event_id,
                    run.starts[r.k].isoformat(),
                    run.ends[r.k].isoformat(),
                    r.site_id,
                    "" if r.requested_kw is None else r.requested_kw,
                    r.allocated_kw,
                    "" if r.baseline_kw is None else r.baseline_kw,
                    "" if r.delivered_kw is None else r.delivered_kw,
                    r.shortfall_kw,
                    r.source,
                ]
            )
    return path
