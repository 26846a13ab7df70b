"""Report arithmetic of grid-interface.md §Report, on tables checked by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from vpp.measure.baseline import BaselineResult
from vpp.measure.comfort import ZoneComfortInput
from vpp.measure.contract import iso_duration
from vpp.measure.contribution import DeviceInput
from vpp.measure.report import EventInterval, EventSpec, build_report
from vpp.measure.series import IntervalAverage, StepSeries

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 7, 15, 14, 0, tzinfo=SH)
Q = timedelta(minutes=15)


def per_quarter(values: list[float | None], start: datetime = T0) -> StepSeries:
    """A series holding each value for one 15-min interval from `start`; None is a gap."""
    pts = [(start + k * Q, v) for k, v in enumerate(values) if v is not None]
    return StepSeries(pts, max_hold=Q, name="site")


def baseline_of(values: list[float], start: datetime = T0) -> BaselineResult:
    prof = tuple(IntervalAverage(start + k * Q, Q, v) for k, v in enumerate(values))
    return BaselineResult("x_of_y:10/10:multiplicative:cap=0.20", prof, prof)


def event(signal: str, values: list[float], program: str | None = "summer-peak") -> EventSpec:
    ivs = tuple(EventInterval(T0 + k * Q, Q, v) for k, v in enumerate(values))
    return EventSpec("ev-1", 2, signal, ivs, program)  # type: ignore[arg-type]


def test_curtail_report_table() -> None:
    rep = build_report(
        event("curtail_kw", [20, 20, 20, 20]),
        baseline=baseline_of([100, 100, 100, 100]),
        site=per_quarter([80, 85, 70, 95]),
    )
    rows = [
        (r.requested_kw, r.baseline_kw, r.actual_kw, r.delivered_kw, r.ratio, r.shortfall_kw)
        for r in rep.intervals
    ]
    assert rows == [
        (20, 100, 80, 20, 1.0, 0.0),
        (20, 100, 85, 15, 0.75, 5.0),
        (20, 100, 70, 30, 1.5, 0.0),
        (20, 100, 95, 5, 0.25, 15.0),
    ]
    # 70 kW·15 min delivered of 80 kW·15 min requested.
    assert rep.requested_kwh == pytest.approx(20.0)
    assert rep.delivered_kwh == pytest.approx(17.5)
    assert rep.delivered_ratio == pytest.approx(0.875)
    assert rep.final
    assert rep.intervals[1].notes == ("delivered 15.000 of 20.000 kW requested",)


def test_import_cap_report_table_with_baseline_under_the_cap() -> None:
    rep = build_report(
        event("import_cap_kw", [90, 90, 90, 90]),
        baseline=baseline_of([100, 100, 80, 80]),
        site=per_quarter([88, 95, 85, 92]),
    )
    rows = [(r.requested_kw, r.delivered_kw, r.ratio, r.shortfall_kw) for r in rep.intervals]
    assert rows == [
        (10, 12, 1.2, 0.0),
        (10, 5, 0.5, 5.0),
        (0, -5, 1.0, 0.0),  # baseline under the cap, import stayed under it: fully delivered
        (0, -12, 0.0, 2.0),  # baseline under the cap, import went over it
    ]
    assert rep.intervals[3].notes == ("import 92.000 kW above the 90.000 kW cap",)
    # Only intervals that requested something weigh: (12 + 5) / (10 + 10).
    assert rep.delivered_ratio == pytest.approx(0.85)


def test_cap_never_binding_reports_the_compliant_share() -> None:
    rep = build_report(
        event("import_cap_kw", [90, 90, 90, 90]),
        baseline=baseline_of([80, 80, 80, 80]),
        site=per_quarter([85, 85, 92, 85]),
    )
    assert rep.requested_kwh == 0
    assert [r.ratio for r in rep.intervals] == [1.0, 1.0, 0.0, 1.0]
    assert rep.delivered_ratio == pytest.approx(0.75)


def test_partial_report_has_only_elapsed_intervals() -> None:
    ev = event("curtail_kw", [20, 20, 20, 20])
    site = per_quarter([80, 85, 70, 95])
    partial = build_report(
        ev, baseline=baseline_of([100] * 4), site=site, as_of=T0 + timedelta(minutes=35)
    )
    assert not partial.final
    assert [r.start for r in partial.intervals] == [T0, T0 + Q]
    assert partial.delivered_ratio == pytest.approx(35 / 40)
    assert partial.to_contract_dict()["details"]["final"] is False
    final = build_report(ev, baseline=baseline_of([100] * 4), site=site, as_of=T0 + 4 * Q)
    assert final.final and len(final.intervals) == 4


def test_missing_meter_data_and_baseline_are_explained_not_invented() -> None:
    base = baseline_of([100, 100, 100])  # no baseline for the 4th interval
    rep = build_report(
        event("curtail_kw", [20, 20, 20, 20]),
        baseline=base,
        site=per_quarter([80, None, 70, 95]),
    )
    r1, r3 = rep.intervals[1], rep.intervals[3]
    assert r1.actual_kw is None and r1.delivered_kw is None and r1.ratio is None
    assert "site meter covers 0% of the interval: no actual" in r1.notes
    assert r3.baseline_kw is None and "no baseline for this interval" in r3.notes
    # Totals over the intervals with data: (20 + 30) / (20 + 20).
    assert rep.delivered_ratio == pytest.approx(1.25)


def test_offline_devices_and_contributions() -> None:
    pre = T0 - timedelta(hours=4)
    # The AHU drew 30 kW before the event (window 10:00–13:00) and 10 kW during it.
    ahu = StepSeries(
        [(pre + k * Q, 30.0 if k < 16 else 10.0) for k in range(20)], max_hold=Q, name="ahu"
    )
    # The battery idles, discharges 10 kW in the first two intervals, then drops off the bus.
    bat = StepSeries(
        [(pre + k * Q, 0.0) for k in range(16)] + [(T0, -10.0), (T0 + Q, -10.0)],
        max_hold=Q,
        name="bat",
    )
    own = tuple(IntervalAverage(T0 + k * Q, Q, 5.0) for k in range(4))
    ev_charger = StepSeries([(T0 + k * Q, 0.0) for k in range(4)], max_hold=Q, name="evse")
    devices = [
        DeviceInput("bat1", bat),
        DeviceInput("ahu1", ahu),
        DeviceInput("evse1", ev_charger, baseline=own, offline=[(T0 + 2 * Q, T0 + 3 * Q)]),
    ]
    rep = build_report(
        event("curtail_kw", [30, 30, 30, 30]),
        baseline=baseline_of([100] * 4),
        site=per_quarter([70, 70, 80, 90]),
        devices=devices,
        device_reference_window=(T0 - timedelta(hours=4), T0 - timedelta(hours=1)),
    )
    by_id = {c.device_id: c for c in rep.devices}
    assert [c.device_id for c in rep.devices] == ["ahu1", "bat1", "evse1"]
    assert by_id["ahu1"].method == "pre_event_mean" and by_id["ahu1"].reference_kw == 30.0
    assert by_id["ahu1"].contribution_kwh == pytest.approx(20.0)  # 20 kW for 1 h
    assert by_id["bat1"].contribution_kwh == pytest.approx(5.0)  # 10 kW for 30 min
    assert by_id["evse1"].method == "device_baseline"
    assert by_id["evse1"].contribution_kwh == pytest.approx(5.0)
    assert [r.offline_devices for r in rep.intervals] == [(), (), ("bat1", "evse1"), ("bat1",)]
    assert "offline: bat1, evse1" in rep.intervals[2].notes
    assert rep.intervals[2].shortfall_kw == 10.0
    d = rep.to_contract_dict()
    assert d["intervals"][3]["missing"]["offline_devices"] == ["bat1"]
    assert d["details"]["devices"][1]["offline_intervals"] == [
        (T0 + 2 * Q).astimezone(UTC).isoformat(),
        (T0 + 3 * Q).astimezone(UTC).isoformat(),
    ]


def test_contract_dict_fields_rounding_and_bytes() -> None:
    ev = event("curtail_kw", [30, 30])
    site = per_quarter([100 - 10 / 3, 100 - 20 / 3])
    zone = ZoneComfortInput("z1", [(T0, 26.0), (T0 + Q, 26.5), (T0 + 2 * Q, 27.0)], 22.0, 26.0)
    rep = build_report(ev, baseline=baseline_of([100, 100]), site=site, zones=[zone])
    d = rep.to_contract_dict(details=False)
    assert list(d) == [
        "v",
        "event_id",
        "modification",
        "program",
        "signal",
        "baseline_method",
        "intervals",
        "delivered_ratio",
        "comfort_violation_degC_h",
    ]
    assert d["v"] == 1 and d["event_id"] == "ev-1" and d["modification"] == 2
    assert d["intervals"][0] == {
        "start": "2026-07-15T14:00:00+08:00",
        "duration": "PT15M",
        "requested_kw": 30.0,
        "baseline_kw": 100.0,
        "actual_kw": 96.667,
        "delivered_kw": 3.333,
    }
    assert d["delivered_ratio"] == pytest.approx(round(5 / 30, 3))
    assert d["comfort_violation_degC_h"] == 0.25  # ramp 0 → 1 degC over 30 min
    again = build_report(ev, baseline=baseline_of([100, 100]), site=site, zones=[zone])
    assert again.to_json() == rep.to_json()
    assert json.loads(rep.to_json())["details"]["final"] is True
    assert json.loads(rep.to_json())["final"] is True


def test_event_spec_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"intervals\[1\]\.start"):
        EventSpec("e", 0, "curtail_kw", (EventInterval(T0, 2 * Q, 1), EventInterval(T0 + Q, Q, 1)))
    with pytest.raises(ValueError, match=r"intervals\[0\]\.start: naive"):
        EventSpec("e", 0, "curtail_kw", (EventInterval(datetime(2026, 7, 15, 14), Q, 1),))
    with pytest.raises(ValueError, match="signal"):
        EventSpec("e", 0, "shed", (EventInterval(T0, Q, 1),))  # type: ignore[arg-type]


def test_iso_duration() -> None:
    assert iso_duration(Q) == "PT15M"
    assert iso_duration(timedelta(hours=1, minutes=30)) == "PT1H30M"
    assert iso_duration(timedelta(days=1)) == "P1D"
    assert iso_duration(timedelta(seconds=90)) == "PT1M30S"


def test_no_baseline_is_stated_and_nothing_is_invented() -> None:
    none = BaselineResult("x_of_y:10/10:multiplicative:cap=0.20", (), (), reason="no like days")
    rep = build_report(event("curtail_kw", [20, 20]), baseline=none, site=per_quarter([80, 80]))
    assert rep.delivered_ratio is None and rep.requested_kwh == 0
    assert all(r.baseline_kw is None and r.delivered_kw is None for r in rep.intervals)
    assert rep.notes == ("baseline: no like days",)
    assert rep.to_contract_dict()["details"]["notes"] == ["baseline: no like days"]


def test_price_event_reports_delivery_without_a_request() -> None:
    rep = build_report(
        event("price", [1.2, 1.5]),
        baseline=baseline_of([100, 100]),
        site=per_quarter([90, 100.0001]),
    )
    assert [r.requested_kw for r in rep.intervals] == [None, None]
    assert [r.delivered_kw for r in rep.intervals] == pytest.approx([10, -0.0001])
    assert rep.delivered_ratio is None
    # -0.0001 rounds to -0.0, which is written as 0.0.
    assert '"delivered_kw":0.0' in rep.to_json() and "-0.0" not in rep.to_json()


def test_export_cap_report_is_delivered_while_the_export_stays_under_the_cap() -> None:
    rep = build_report(
        event("export_cap_kw", [10, 10, 10, 10]),
        baseline=baseline_of([-40, -40, -40, -40]),
        site=per_quarter([-8, -10, -14, 5]),
    )
    rows = [(r.requested_kw, r.delivered_kw, r.ratio, r.shortfall_kw) for r in rep.intervals]
    assert rows == [
        (0, -32, 1.0, 0.0),
        (0, -30, 1.0, 0.0),  # exactly at the cap: delivered
        (0, -26, 0.0, 4.0),  # 14 kW exported: 4 kW past the cap
        (0, -45, 1.0, 0.0),  # importing
    ]
    assert rep.intervals[2].notes == ("export 14.000 kW above the 10.000 kW export cap",)
    assert rep.requested_kwh == 0
    assert rep.delivered_ratio == pytest.approx(0.75)


def test_carbon_report_requests_nothing() -> None:
    rep = build_report(
        event("carbon", [0.6, 0.2]), baseline=baseline_of([50, 50]), site=per_quarter([40, 60])
    )
    assert [(r.requested_kw, r.ratio) for r in rep.intervals] == [(None, None), (None, None)]
    assert rep.delivered_ratio is None


def test_import_target_report_rates_how_close_the_import_came_either_way() -> None:
    rep = build_report(
        event("import_target_kw", [100, 100, 100, 0]),
        baseline=baseline_of([60, 60, 60, 60]),
        site=per_quarter([100, 90, 125, 0.25]),
    )
    rows = [(r.requested_kw, r.ratio, r.shortfall_kw) for r in rep.intervals]
    assert rows == [
        (0, 1.0, 0.0),  # on the target
        (0, pytest.approx(0.9), pytest.approx(10.0)),  # 10 kW under it
        (0, pytest.approx(0.75), pytest.approx(25.0)),  # 25 kW over it
        (0, pytest.approx(0.75), pytest.approx(0.25)),  # a 0 kW target: scaled by 1 kW
    ]
    assert rep.intervals[1].notes == ("import 90.000 kW, 10.000 kW off the 100.000 kW target",)
    assert rep.requested_kwh == 0
    assert rep.delivered_ratio == pytest.approx((1.0 + 0.9 + 0.75 + 0.75) / 4)
