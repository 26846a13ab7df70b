"""The dispatcher's closed loop on plain snapshots: order, guardrails, exclusion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from vpp.control.dispatcher import Dispatcher
from vpp.control.types import DeviceView, PlanStep, Snapshot, Target
from vpp.site import load_site

OFFICE = Path(__file__).resolve().parent.parent / "config" / "sites" / "office.yaml"
NOW = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)


def _views(**over: dict[str, float]) -> dict[str, DeviceView]:
    site = load_site(OFFICE)
    base = {
        "battery": {"soc_pct": 80, "power_kw": 0, "max_charge_kw": 250, "max_discharge_kw": 250},
        "ev_charger": {"plugged": 1, "power_kw": 11, "session_energy_kwh": 20, "max_power_kw": 22},
        "hvac": {"zone_temp_c": 24, "power_kw": 40},
        "curtailable_load": {"power_kw": 20},
    }
    views = {}
    for d in site.devices:
        values = dict(base.get(d.kind.value, {}))
        values.update(over.get(d.id, {}))
        views[d.id] = DeviceView(d.id, True, values)
    return views


def _snap(import_kw: float, views: dict[str, DeviceView], at_s: float = 0.0) -> Snapshot:
    ts = NOW + timedelta(seconds=at_s)
    fresh = {k: DeviceView(v.id, v.usable, v.values, ts, v.reason) for k, v in views.items()}
    return Snapshot(ts, at_s, import_kw, fresh)


def _setpoints(commands: list, point: str) -> dict[str, float]:
    return {c.device_id: c.value for c in commands if c.point == point}


def test_follows_plan_without_target() -> None:
    d = Dispatcher(load_site(OFFICE))
    plan = PlanStep(power_kw={"bat1": 50.0, "ev1": 7.0})
    res = d.cycle(_snap(300, _views()), plan, None)
    assert _setpoints(res.commands, "power_setpoint_kw") == {"bat1": 50.0}
    assert _setpoints(res.commands, "power_limit_kw")["ev1"] == 7.0
    assert res.error_kw == 0.0


def test_event_error_is_shed_by_the_battery_first() -> None:
    d = Dispatcher(load_site(OFFICE))
    target = Target(400.0, "event:e1", "e1")
    res = d.cycle(_snap(500, _views()), PlanStep(power_kw={"bat1": 0.0}), target)
    aim = 400 - max(3.0, 0.03 * 400)
    assert res.error_kw == 500 - aim
    battery = [c.value for c in res.commands if c.point == "power_setpoint_kw"]
    assert battery[-1] == -round(
        d.gain * (500 - aim), 3
    )  # the error (times the gain), all on the battery
    assert not any(c.point == "shed" and c.value == 1.0 for c in res.commands)


def test_battery_at_reserve_passes_the_error_to_evs_zones_and_loads() -> None:
    d = Dispatcher(load_site(OFFICE))
    views = _views(bat1={"soc_pct": 20.5})
    res = d.cycle(
        _snap(700, views), PlanStep(power_kw={"bat1": 0.0}), Target(400.0, "event:e", "e")
    )
    assert [c.value for c in res.commands if c.point == "power_setpoint_kw"][-1] == 0.0
    ev_limits = _setpoints([c for c in res.commands if c.reason == "closed_loop"], "power_limit_kw")
    assert any(k.startswith("ev") for k in ev_limits)
    assert any(c.point == "shed" and c.value == 1.0 for c in res.commands)


def test_offline_device_is_left_out_and_a_replan_asked() -> None:
    d = Dispatcher(load_site(OFFICE))
    views = _views()
    views["bat1"] = DeviceView("bat1", False, {}, reason="timeout")
    res = d.cycle(_snap(500, views), PlanStep(), Target(400.0, "event:e", "e"))
    assert res.replan and res.not_following == ["bat1"]
    assert "bat1" in d.excluded
    assert not any(c.device_id == "bat1" for c in res.commands)


def test_battery_that_ignores_its_setpoint_is_detected_in_two_cycles() -> None:
    d = Dispatcher(load_site(OFFICE))
    target = Target(400.0, "event:e", "e")
    plan = PlanStep(power_kw={"bat1": 0.0})
    first = d.cycle(_snap(500, _views(), 0), plan, target)
    assert not first.replan
    # The same reading again (no new poll) is not evidence.
    assert not d.cycle(_snap(500, _views(), 0), plan, target).replan
    second = d.cycle(_snap(500, _views(), 5), plan, target)
    assert not second.replan  # one miss so far
    third = d.cycle(_snap(500, _views(), 10), plan, target)
    assert third.replan and "bat1" in third.not_following


def test_warm_zone_gets_power_back_and_is_not_shed() -> None:
    d = Dispatcher(load_site(OFFICE))
    views = _views(**{"zone-north": {"zone_temp_c": 25.9, "power_kw": 40}})
    res = d.cycle(_snap(900, views), PlanStep(), Target(400.0, "event:e", "e"))
    north = [c for c in res.commands if c.device_id == "zone-north" and c.point == "power_limit_kw"]
    assert all(c.reason == "plan" for c in north)
