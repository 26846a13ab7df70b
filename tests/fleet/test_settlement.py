"""Settlement rows as a pure function of a run, the sites' reports and their telemetry: a
reported interval is settled on the report, an unreported one on the telemetry for the part
it covers, the district's row is the sum; the CSV adds event after event with one header."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vpp.fleet.book import FleetBook
from vpp.fleet.run import EventRun, Leg
from vpp.fleet.settlement import district_report, interval_rows, write_csv

T0 = datetime(2026, 7, 15, 6, 10, tzinfo=UTC)
FIVE = timedelta(minutes=5)


def _run(event_id: str = "e1") -> EventRun:
    return EventRun(
        event_id=event_id,
        modification=0,
        signal="curtail_kw",
        starts=[T0, T0 + FIVE],
        ends=[T0 + FIVE, T0 + 2 * FIVE],
        requested_kw=[60.0, 60.0],
        legs={
            "a": Leg(site_id="a", values=[40.0, 40.0], reference_kw=200.0, status="opt_in"),
            "b": Leg(site_id="b", values=[20.0, 20.0], reference_kw=100.0, status="opt_in"),
        },
        reported=2,
    )


def _book() -> FleetBook:
    book = FleetBook(["a", "b"], "vpp")
    # b: 80 kW (20 below its reference) in interval 0; in interval 1 only its first minute.
    for k in range(1, 61):
        book.sites["b"].samples.append((T0 + timedelta(seconds=5 * k), 80.0))
    for k in range(1, 13):
        book.sites["b"].samples.append((T0 + FIVE + timedelta(seconds=5 * k), 80.0))
    return book


REPORT_A = {
    "intervals": [
        {"start": T0.isoformat(), "baseline_kw": 210.0, "delivered_kw": 38.0},
        {"start": (T0 + FIVE).isoformat(), "baseline_kw": 210.0, "delivered_kw": 41.0},
    ]
}


def test_rows_from_reports_and_covered_telemetry() -> None:
    run, book = _run(), _book()
    r0 = interval_rows(run, 0, book, {"a": REPORT_A}, "d")
    a, b, district = r0
    assert (a.source, a.baseline_kw, a.delivered_kw, a.shortfall_kw) == ("report", 210.0, 38.0, 2.0)
    assert (b.source, b.baseline_kw, b.delivered_kw) == ("telemetry", 100.0, 20.0)
    assert (district.baseline_kw, district.delivered_kw, district.shortfall_kw) == (
        310.0,
        58.0,
        2.0,
    )
    _, b1, d1 = interval_rows(run, 1, book, {"a": REPORT_A}, "d")
    assert b1.delivered_kw == 4.0  # 20 kW over the one minute of five it was seen
    assert d1.delivered_kw == 45.0
    report = district_report(run, [district, d1], None)
    assert [iv["actual_kw"] for iv in report["intervals"]] == [252.0, 265.0]
    assert report["delivered_ratio"] == round(103.0 / 120.0, 4)


def test_csv_appends_event_after_event(tmp_path: Path) -> None:
    path = tmp_path / "settlement.csv"
    book = _book()
    for eid in ("e1", "e2"):
        run = _run(eid)
        rows = [r for k in range(2) for r in interval_rows(run, k, book, {"a": REPORT_A}, "d")]
        write_csv(path, run, rows, append=True)
    lines = list(csv.DictReader(path.open()))
    assert len(lines) == 2 * 2 * 3
    assert [r["event_id"] for r in lines[::6]] == ["e1", "e2"]
    assert path.read_text().count("event_id,") == 1
