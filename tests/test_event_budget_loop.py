"""The closed loop's side of the event energy budget and of sheddable loads with a price: a
battery never discharges faster than it can hold to the event's end, a discharge the event
does not need is given back, loads shed cheapest first, at most `max_shed_min` at a time,
rested `min_rest_min` between sheds, and kept shed through an event rather than lost to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from vpp.control.dispatcher import Dispatcher
from vpp.control.types import DeviceView, PlanStep, Snapshot, Target, TargetSource
from vpp.site import Site, load_site

NOW = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)
END = NOW + timedelta(hours=2)


def _site(tmp: Path, loads: list[dict[str, Any]], battery: bool = True) -> Site:
    devices: list[dict[str, Any]] = [
        {"id": "meter", "type": "meter", "profile": "site-meter", "port": 0}
    ]
    if battery:
        devices.append(
            {
                "id": "bat1",
                "type": "battery",
                "profile": "sunspec-battery",
                "port": 0,
                "limits": {"power_setpoint_kw": [-100, 100]},
                "soc_reserve_pct": 20,
                "priority": 10,
            }
        )
    for ld in loads:
        devices.append({"type": "curtailable_load", "profile": "curtailable-load", "port": 0, **ld})
    path = tmp / "site.yaml"
    path.write_text(yaml.safe_dump({"site_id": "t", "devices": devices}))
    return load_site(path)


def _snap(import_kw: float, at_min: float, values: dict[str, dict[str, float]]) -> Snapshot:
    ts = NOW + timedelta(minutes=at_min)
    views = {k: DeviceView(k, True, v, ts) for k, v in values.items()}
    views["meter"] = DeviceView("meter", True, {"import_power_kw": import_kw}, ts)
    return Snapshot(ts, at_min * 60, import_kw, views)


def _event(kw: float) -> Target:
    return Target(kw, TargetSource.EVENT, "e", until=END)


def _shed_cmds(res: Any) -> dict[str, float]:
    return {c.device_id: c.value for c in res.commands if c.point == "shed"}


def test_a_battery_discharging_past_what_it_can_hold_is_brought_back(tmp_path: Path) -> None:
    d = Dispatcher(_site(tmp_path, []))
    full = {"bat1": {"soc_pct": 90.0, "capacity_kwh": 200.0, "power_kw": 0.0}}
    # Entering the event from a plan that discharges at 100 kW.
    d.cycle(_snap(300, 0, full), PlanStep(power_kw={"bat1": -100.0}), _event(200))
    # Later, 31 % left (10 % above reserve and margin) with 1 h to go: 19 kW at most.
    low = {"bat1": {"soc_pct": 31.0, "capacity_kwh": 200.0, "power_kw": -100.0}}
    res = d.cycle(_snap(200, 60, low), PlanStep(power_kw={"bat1": -100.0}), _event(200))
    set_kw = [c.value for c in res.commands if c.point == "power_setpoint_kw"]
    assert set_kw and max(set_kw) <= 0 and set_kw[0] == -19.0
    assert all(v >= -19.0 for v in set_kw)


def test_a_discharge_the_event_does_not_need_is_given_back(tmp_path: Path) -> None:
    d = Dispatcher(_site(tmp_path, []))
    views = {"bat1": {"soc_pct": 90.0, "capacity_kwh": 200.0, "power_kw": -60.0}}
    plan = PlanStep(power_kw={"bat1": -60.0})
    d.cycle(_snap(150, 0, views), plan, _event(200))  # entering: the plan's -60
    # The site is 50 kW under the target: the battery discharges less than the plan says.
    res = d.cycle(_snap(150, 0.1, views), plan, _event(200))
    set_kw = [c.value for c in res.commands if c.point == "power_setpoint_kw"]
    assert set_kw and set_kw[-1] > -60.0


def _two_loads(tmp: Path, **terms: Any) -> Site:
    dear = {"id": "lighting", "shed_cost_per_kwh": 2.0, "priority": 20, **terms}
    cheap = {"id": "pool", "shed_cost_per_kwh": 0.3, "priority": 20, **terms}
    return _site(tmp, [dear, cheap], battery=False)


def test_the_cheaper_load_is_shed_first(tmp_path: Path) -> None:
    d = Dispatcher(_two_loads(tmp_path))
    loads = {"lighting": {"power_kw": 20.0}, "pool": {"power_kw": 20.0}}
    res = d.cycle(_snap(230, 0, loads), PlanStep(), _event(220))
    assert {k for k, v in _shed_cmds(res).items() if v == 1.0} == {"pool"}


def test_a_load_runs_again_after_its_longest_shed_and_rests(tmp_path: Path) -> None:
    d = Dispatcher(_two_loads(tmp_path, max_shed_min=30, min_rest_min=20))
    loads = {"lighting": {"power_kw": 20.0}, "pool": {"power_kw": 20.0}}
    d.cycle(_snap(230, 0, loads), PlanStep(), _event(220))  # pool shed
    shed = {"lighting": {"power_kw": 20.0}, "pool": {"power_kw": 0.0}}
    # Held shed through the event while short of 30 min, even with a surplus...
    res = d.cycle(_snap(150, 10, shed), PlanStep(), _event(220))
    assert "pool" not in _shed_cmds(res)
    # ...released at 30 min; the loop then sheds the other one.
    res = d.cycle(_snap(210, 30, shed), PlanStep(), _event(220))
    assert _shed_cmds(res).get("pool") == 0.0
    res = d.cycle(_snap(230, 30.1, loads), PlanStep(), _event(220))
    assert _shed_cmds(res) == {"lighting": 1.0}
    # The pool rests 20 min: not shed again at 40 min, though the error asks for more.
    both = {"lighting": {"power_kw": 0.0}, "pool": {"power_kw": 20.0}}
    res = d.cycle(_snap(260, 40, both), PlanStep(), _event(220))
    assert "pool" not in _shed_cmds(res) and res.unmet_kw > 0
    res = d.cycle(_snap(260, 51, both), PlanStep(), _event(220))
    assert _shed_cmds(res) == {"pool": 1.0}


def test_a_dr_only_load_follows_a_plan_that_does_not_shed_it(tmp_path: Path) -> None:
    d = Dispatcher(_two_loads(tmp_path))
    loads = {"lighting": {"power_kw": 20.0}, "pool": {"power_kw": 20.0}}
    res = d.cycle(_snap(100, 0, loads), PlanStep(power_kw={"lighting": 20.0, "pool": 20.0}), None)
    assert _shed_cmds(res) == {"lighting": 0.0, "pool": 0.0}


def test_recovery_ramps_then_holds_the_days_peak_until_its_window_ends() -> None:
    from vpp.control.recovery import Recovery

    hold = {NOW + timedelta(minutes=15 * k): 300.0 + 10 * k for k in range(8)}
    rec = Recovery(
        NOW, 200.0, 20.0, 800.0,
        hold=lambda t: max(320.0, hold.get(t.replace(minute=t.minute // 15 * 15), 0.0)),
        window=timedelta(hours=2),
    )  # fmt: skip
    assert rec.proposal(NOW).source is TargetSource.RECOVERY
    assert rec.ceiling(NOW + timedelta(minutes=2)) == 240.0
    # At 6 min the ramp reaches the day's peak (320): a limit from then on, not a target.
    later = NOW + timedelta(minutes=10)
    assert rec.ceiling(later) == 320.0
    assert rec.proposal(later).source is TargetSource.SITE_LIMIT
    # The site without the event would go higher later (the baseline): that is allowed.
    assert rec.ceiling(NOW + timedelta(minutes=75)) == 350.0
    assert not rec.over(NOW + timedelta(minutes=119))
    assert rec.over(NOW + timedelta(hours=2))
