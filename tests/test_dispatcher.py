"""The dispatcher's closed loop on plain snapshots: order, guardrails, exclusion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from devices.clock import VirtualClock
from vpp.control.dispatcher import Dispatcher
from vpp.control.types import Command, DeviceView, PlanStep, Snapshot, Target, TargetSource
from vpp.control.writer import CommandWriter
from vpp.site import load_site
from vpp.store.store import Store

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
    target = Target(400.0, TargetSource.EVENT, "e1")
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
        _snap(700, views), PlanStep(power_kw={"bat1": 0.0}), Target(400.0, TargetSource.EVENT, "e")
    )
    assert [c.value for c in res.commands if c.point == "power_setpoint_kw"][-1] == 0.0
    ev_limits = _setpoints([c for c in res.commands if c.reason == "closed_loop"], "power_limit_kw")
    assert any(k.startswith("ev") for k in ev_limits)
    assert any(c.point == "shed" and c.value == 1.0 for c in res.commands)


def test_offline_device_is_left_out_and_a_replan_asked() -> None:
    d = Dispatcher(load_site(OFFICE))
    views = _views()
    views["bat1"] = DeviceView("bat1", False, {}, reason="timeout")
    res = d.cycle(_snap(500, views), PlanStep(), Target(400.0, TargetSource.EVENT, "e"))
    assert res.replan and res.not_following == ["bat1"]
    assert "bat1" in d.excluded
    assert not any(c.device_id == "bat1" for c in res.commands)


def test_battery_that_ignores_its_setpoint_is_detected_in_two_cycles() -> None:
    d = Dispatcher(load_site(OFFICE))
    target = Target(400.0, TargetSource.EVENT, "e")
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
    res = d.cycle(_snap(900, views), PlanStep(), Target(400.0, TargetSource.EVENT, "e"))
    north = [c for c in res.commands if c.device_id == "zone-north" and c.point == "power_limit_kw"]
    assert all(c.reason == "plan" for c in north)


def test_battery_spreads_its_energy_over_the_rest_of_the_event() -> None:
    d = Dispatcher(load_site(OFFICE))
    # 40 % of 500 kWh with a 20 % reserve (+1 % margin): 95 kWh left for one hour, 90.25 kWh
    # of it on the AC side (95 % out).
    views = _views(bat1={"soc_pct": 40.0, "capacity_kwh": 500.0})
    target = Target(400.0, TargetSource.EVENT, "e", until=NOW + timedelta(hours=1))
    res = d.cycle(_snap(700, views), PlanStep(power_kw={"bat1": 0.0}), target)
    battery = [c.value for c in res.commands if c.point == "power_setpoint_kw"][-1]
    assert battery == -90.25
    # The rest of the error went to the next devices in the site's order (loads first).
    assert any(c.point == "shed" and c.value == 1.0 for c in res.commands)
    # Without an end to spread over (site limit), the battery gives what it has at once.
    d2 = Dispatcher(load_site(OFFICE))
    res2 = d2.cycle(
        _snap(700, views), PlanStep(power_kw={"bat1": 0.0}), Target(400.0, TargetSource.RECOVERY)
    )
    assert [c.value for c in res2.commands if c.point == "power_setpoint_kw"][-1] < -95.0


def test_an_all_or_nothing_load_comes_back_only_with_room_to_spare() -> None:
    d = Dispatcher(load_site(OFFICE))
    views = _views(bat1={"soc_pct": 20.5})  # at its reserve: the loads are next
    target = Target(400.0, TargetSource.EVENT, "e")
    plan = PlanStep(power_kw={"bat1": 0.0})
    d.cycle(_snap(420, views, 0), plan, target)  # sheds a 20 kW load for ~32 kW of error
    shed = [a for a in d.adapters if getattr(a, "shed", False)]
    assert shed
    for a in shed:  # it obeys: it draws nothing now
        views[a.id] = DeviceView(a.id, True, {"power_kw": 0.0})
    aim = 400 - 0.03 * 400
    # A surplus smaller than a load plus the deadband brings nothing back...
    res = d.cycle(_snap(aim - 20, views, 5), plan, target)
    assert not any(c.point == "shed" and c.value == 0.0 for c in res.commands)
    # ...a surplus that holds it with room to spare brings one back.
    res = d.cycle(_snap(aim - 30, views, 10), plan, target)
    assert [c.value for c in res.commands if c.point == "shed"] == [0.0]


def _only_zones_left(d: Dispatcher) -> dict[str, DeviceView]:
    """Views where the battery is at its reserve and loads and chargers draw nothing."""
    views = _views(bat1={"soc_pct": 20.5})
    for a in d.adapters:
        if a.id.startswith(("ahu", "dhw", "fountain", "lighting")):
            views[a.id] = DeviceView(a.id, True, {"power_kw": 0.0})
        elif a.id.startswith("ev"):
            views[a.id] = DeviceView(a.id, True, {"plugged": 0.0, "power_kw": 0.0})
    return views


def test_a_zone_that_draws_less_than_its_limit_has_nothing_to_give_back() -> None:
    d = Dispatcher(load_site(OFFICE))
    views = _only_zones_left(d)
    target = Target(400.0, TargetSource.EVENT, "e")
    plan = PlanStep(power_kw={"bat1": 0.0})
    d.cycle(_snap(430, views, 0), plan, target)
    limits = {c.device_id: c.value for c in d.cycle(_snap(430, views, 5), plan, target).commands}
    cut = [z for z in limits if z.startswith("zone")]
    assert cut  # the zones took the error
    # The zone now draws 5 kW under its new limit (its thermostat is satisfied): a surplus
    # must not raise that limit, which would give nothing back and wind the loop up.
    z = cut[0]
    views[z] = DeviceView(z, True, {"zone_temp_c": 24, "power_kw": limits[z] - 5})
    res = d.cycle(_snap(300, views, 10), plan, target)
    assert not any(c.device_id == z and c.point == "power_limit_kw" for c in res.commands)


def test_a_zone_at_the_top_of_its_band_is_held_there_not_cooled_back() -> None:
    d = Dispatcher(load_site(OFFICE))
    views = _only_zones_left(d)
    target = Target(300.0, TargetSource.EVENT, "e")
    first = d.cycle(_snap(900, views, 0), PlanStep(), target)
    cut = {c.device_id for c in first.commands if c.reason == "closed_loop"}
    assert "zone-east" in cut  # the first zone in the order took the error
    views["zone-east"] = DeviceView("zone-east", True, {"zone_temp_c": 25.8, "power_kw": 0.0})
    res = d.cycle(_snap(900, views, 5), PlanStep(), target)
    guard = {c.point: c.value for c in res.commands if c.reason == "comfort_guard"}
    # Its limit back, and a setpoint at the band's edge (26 - 0.3), not the plan's 24.
    assert guard == {"setpoint_c": 25.7, "power_limit_kw": 120.0}
    assert not any(c.device_id == "zone-east" and c.reason == "closed_loop" for c in res.commands)


def test_a_watchdog_reassertion_never_replaces_a_new_command() -> None:
    writer = CommandWriter({}, VirtualClock(NOW), Store(":memory:"))
    new = Command("ahu-fans", "shed", 1.0, "closed_loop")
    old = Command("ahu-fans", "shed", 0.0, "watchdog")
    assert writer.due([new, old]) == [new]
    assert writer.due([old, new]) == [new]
    later = Command("ahu-fans", "shed", 0.0, "closed_loop")
    assert writer.due([new, later]) == [later]  # between new commands the last still wins


def test_a_charger_or_load_that_ignores_its_ceiling_is_left_out_in_two_readings() -> None:
    d = Dispatcher(load_site(OFFICE))
    views = _views(bat1={"soc_pct": 20.5})  # at its reserve: loads and chargers are next
    target = Target(400.0, TargetSource.EVENT, "e")
    plan = PlanStep(power_kw={"bat1": 0.0})
    first = d.cycle(_snap(600, views, 0), plan, target)
    told = {c.device_id for c in first.commands if c.reason == "closed_loop"}
    assert {"ahu-fans", "ev1"} <= told
    # Fresh readings show them drawing as before: a shed load at 20 kW, a charger at 11 kW
    # over its new limit. Drawing less than told would be following; more is not.
    ev1_limit = [c.value for c in first.commands if c.device_id == "ev1"][-1]
    assert ev1_limit < 11 - 3
    second = d.cycle(_snap(600, views, 5), plan, target)
    assert not second.replan  # one miss each so far
    third = d.cycle(_snap(600, views, 10), plan, target)
    assert third.replan
    assert {"ahu-fans", "ev1"} <= set(third.not_following)
    assert d.excluded["ahu-fans"] == "not following its setpoint"


def test_export_cap_closes_the_loop_and_the_battery_soaks_up_export_past_it(
    tmp_path: Path,
) -> None:
    from vpp.control.arbiter import Arbiter, Proposal

    # The office, allowed to export 100 kW by its own limit.
    text = OFFICE.read_text().replace("export_kw: 0", "export_kw: 100")
    assert text != OFFICE.read_text()
    (tmp_path / "office.yaml").write_text(text)
    site = load_site(tmp_path / "office.yaml")
    plan = PlanStep(power_kw={"bat1": 10.0})
    # The arbiter keeps the lowest export ceiling beside whichever import ceiling governs.
    target = Arbiter(site.config.limits.import_kw).decide(
        [
            Proposal(None, TargetSource.EVENT, "x1", export_max_kw=30.0),
            Proposal(None, TargetSource.EVENT, "x2", export_max_kw=5.0),
        ]
    )
    assert (target.source, target.export_max_kw) == (TargetSource.SITE_LIMIT, 5.0)
    views = _views(bat1={"power_kw": 10.0})

    def battery_after(target: Target) -> float:
        d = Dispatcher(site)
        d.cycle(_snap(300, views), plan, None)
        res = d.cycle(_snap(-25, views, 5), plan, target)
        return _setpoints(res.commands, "power_setpoint_kw").get("bat1", 10.0)

    # Following the plan (battery at +10 kW) the site exports 25 kW: past the 5 kW cap, so
    # the loop closes on the export and the battery charges beyond its plan.
    assert Dispatcher(site).export_limit_kw(target) == 5.0
    # By the gain's share of the export past the floor the loop aims at (1 kW above −5 kW).
    assert battery_after(target) == round(10.0 + Dispatcher(site).gain * (25 - 5 + 1), 3)
    # Without the cap 25 kW is within the site's own limit: the battery keeps to its plan.
    assert battery_after(Target(site.config.limits.import_kw, TargetSource.SITE_LIMIT)) == 10.0


def test_an_import_target_raises_the_import_to_it_and_sheds_down_to_it() -> None:
    from vpp.control.arbiter import Arbiter, Proposal

    site = load_site(OFFICE)
    limit = site.config.limits.import_kw
    # The arbiter keeps the governing proposal's floor, never above the site's limit.
    target = Arbiter(limit).decide([Proposal(300.0, TargetSource.EVENT, "t1", import_min_kw=300.0)])
    assert (target.import_max_kw, target.import_min_kw) == (300.0, 300.0)
    over = Arbiter(limit).decide(
        [Proposal(limit + 50, TargetSource.EVENT, "t2", import_min_kw=limit + 50)]
    )
    assert over.import_min_kw == over.import_max_kw == limit
    plan = PlanStep(power_kw={"bat1": 0.0})
    views = _views(bat1={"power_kw": 0.0})

    def battery_after(import_kw: float, target: Target) -> float:
        d = Dispatcher(site)
        d.cycle(_snap(import_kw, views), plan, None)
        res = d.cycle(_snap(import_kw, views, 5), plan, target)
        return _setpoints(res.commands, "power_setpoint_kw").get("bat1", 0.0)

    gain = Dispatcher(site).gain
    # 40 kW under the target: the battery charges (beyond its plan) by the gain's share.
    assert battery_after(260.0, target) == round(gain * 40.0, 3)
    # 40 kW over it: the battery discharges, aiming at the target itself (no margin under).
    assert battery_after(340.0, target) == -round(gain * 40.0, 3)
    # Within half the deadband either way: left alone.
    assert battery_after(301.5, target) == 0.0
    assert battery_after(298.5, target) == 0.0
    # The same 40 kW under a cap alone (no floor) asks nothing of the battery.
    assert battery_after(260.0, Target(300.0, TargetSource.EVENT, "c1")) == 0.0


def test_a_zone_spends_its_headroom_over_the_event_not_at_its_start() -> None:
    d = Dispatcher(load_site(OFFICE))
    views = _only_zones_left(d)
    for a in d.adapters:
        if a.id.startswith("zone"):
            views[a.id] = DeviceView(a.id, True, {"zone_temp_c": 22.0, "power_kw": 40.0})
    # Two hours of event: the band 22-26 (top 25.7 with the margin) from 22.0 at its start.
    target = Target(100.0, TargetSource.EVENT, "e", until=NOW + timedelta(hours=2))
    first = d.cycle(_snap(900, views, 0), PlanStep(), target)
    assert "zone-east" in {c.device_id for c in first.commands if c.reason == "closed_loop"}
    # Half an hour in, 1.5 degC warmer: past its ramp, from 22.5 (the guard's hysteresis above
    # 22.0) to 25.7 at the end, a quarter of the way (23.3).
    views["zone-east"] = DeviceView("zone-east", True, {"zone_temp_c": 23.5, "power_kw": 0.0})
    res = d.cycle(_snap(900, views, 1800), PlanStep(), target)
    guard = {c.point: c.value for c in res.commands if c.device_id == "zone-east"}
    assert guard == {"setpoint_c": 23.3, "power_limit_kw": 120.0}
    assert not any(c.device_id == "zone-east" and c.reason == "closed_loop" for c in res.commands)
    # A plan that lets it warm faster (24.0 at this step's end) is the budget instead.
    d2 = Dispatcher(load_site(OFFICE))
    views["zone-east"] = DeviceView("zone-east", True, {"zone_temp_c": 22.0, "power_kw": 40.0})
    d2.cycle(_snap(900, views, 0), PlanStep(), target)
    views["zone-east"] = DeviceView("zone-east", True, {"zone_temp_c": 23.5, "power_kw": 20.0})
    plan = PlanStep(zone_temp_c={"zone-east": 24.0})
    res2 = d2.cycle(_snap(900, views, 1800), plan, target)
    assert not any(c.reason == "comfort_guard" for c in res2.commands)
    east = next(a for a in d2.adapters if a.id == "zone-east")
    assert not east.guarded and east.ceiling_c(NOW + timedelta(seconds=1800), 23.5) == 24.3


def test_a_car_whose_stay_outlasts_the_event_is_charged_after_it() -> None:
    def ev1_limit(target: Target) -> float:
        d = Dispatcher(load_site(OFFICE))
        views = _only_zones_left(d)
        views["ev1"] = DeviceView(
            "ev1", True, {"plugged": 1.0, "power_kw": 22.0, "session_energy_kwh": 0.0}
        )
        res = d.cycle(_snap(2000, views), PlanStep(), target)
        return [c.value for c in res.commands if c.device_id == "ev1"][-1]

    # ev1: 25 kWh within 9 h (site defaults). Outside an event its floor is an even share of
    # that with 15 % margin; in a one-hour event the stay after it holds the need at half the
    # charger's 22 kW: nothing is owed during the event.
    assert ev1_limit(Target(100.0, TargetSource.RECOVERY)) == round(1.15 * 25 / 9, 3)
    assert ev1_limit(Target(100.0, TargetSource.EVENT, "e", until=NOW + timedelta(hours=1))) == 0
    # An event lasting most of the stay leaves the car what the rest cannot give it.
    long = Target(100.0, TargetSource.EVENT, "e", until=NOW + timedelta(hours=8))
    assert ev1_limit(long) == round((1.15 * 25 - 0.5 * 22 * 0.75) / 8, 3)
