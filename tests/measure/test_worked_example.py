"""The worked example of docs/measurement.md, end to end: history → baseline → report →
rebound. If a number here changes, the document must change with it."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest

from tests.measure.helpers import history, local
from vpp.measure import (
    BaselineResult,
    DeviceInput,
    EventInterval,
    EventReport,
    EventSpec,
    Rebound,
    StepSeries,
    ZoneComfortInput,
    build_report,
    rebound_peak,
    x_of_y_baseline,
)

SH = "Asia/Shanghai"
DAY = date(2026, 7, 15)
START, END = local(SH, DAY, 14), local(SH, DAY, 15)
Q = timedelta(minutes=15)


def load(d: date, t: time) -> float:
    """Past days: 200 kW all day. Event morning: 210 kW (a hotter day)."""
    return 210.0 if d == DAY else 200.0


def build() -> tuple[BaselineResult, EventReport, Rebound]:
    hist = history(SH, DAY - timedelta(days=30), DAY, load, until=START)
    baseline = x_of_y_baseline(
        hist, tz=SH, event_start=START, event_end=END, profile_end=END + timedelta(hours=2)
    )
    metered = [185.0, 178.0, 180.0, 192.0] + [230.0, 245.0, 225.0, 215.0] + [210.0] * 4
    site = StepSeries([(START + k * Q, v) for k, v in enumerate(metered)], max_hold=Q)
    zone = ZoneComfortInput(
        "floor3", [(START + k * Q, 25.0 + 0.5 * k) for k in range(5)], low_c=22.0, high_c=26.0
    )
    bat = StepSeries(
        [(START - timedelta(hours=4) + k * Q, 0.0) for k in range(16)]
        + [(START + k * Q, -20.0) for k in range(3)],
        max_hold=Q,
        name="bat1",
    )
    event = EventSpec(
        "shanghai-2026-07-15-a",
        0,
        "curtail_kw",
        tuple(EventInterval(START + k * Q, Q, 30.0) for k in range(4)),
        program="summer-peak",
    )
    report = build_report(
        event, baseline=baseline, site=site, zones=[zone], devices=[DeviceInput("bat1", bat)]
    )
    rebound = rebound_peak(site, event_end=END, baseline=baseline)
    return baseline, report, rebound


def test_worked_example_numbers() -> None:
    baseline, report, rebound = build()
    assert baseline.days_used == tuple(date(2026, 7, d) for d in (1, 2, 3, 6, 7, 8, 9, 10, 13, 14))
    assert baseline.adjustment.applied == pytest.approx(1.05)
    d = report.to_contract_dict()
    assert [i["baseline_kw"] for i in d["intervals"]] == [210.0] * 4
    assert [i["delivered_kw"] for i in d["intervals"]] == [25.0, 32.0, 30.0, 18.0]
    assert [i["ratio"] for i in d["intervals"]] == [0.833, 1.067, 1.0, 0.6]
    assert [i["shortfall_kw"] for i in d["intervals"]] == [5.0, 0.0, 0.0, 12.0]
    assert d["delivered_ratio"] == 0.875
    assert d["comfort_violation_degC_h"] == 0.25
    assert d["intervals"][3]["missing"]["offline_devices"] == ["bat1"]
    assert d["details"]["devices"][0]["contribution_kwh"] == 15.0
    assert rebound.peak_kw == 245.0 and rebound.excess_kw == pytest.approx(35.0)


if __name__ == "__main__":  # print the report for the document
    import json

    _, rep, reb = build()
    print(json.dumps(rep.to_contract_dict(), indent=2))
    print(reb)
