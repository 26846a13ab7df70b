"""The generic Modbus driver against real pymodbus servers serving bundled profiles."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from devices import codec
from devices.clock import VirtualClock
from devices.driver import DeviceError, PointError
from devices.modbus_driver import ModbusDriver
from devices.profile import parse_profile
from tests.devices.conftest import ServeFn, bundled


async def test_reads_every_point_with_scale_factors_and_word_order(serve: ServeFn) -> None:
    clock = VirtualClock()
    battery, charger = bundled("sunspec-battery"), bundled("ev-charger-modbus")
    sb, sc = await serve(battery, clock), await serve(charger, clock)
    sb.set("soc_pct", 55.5)  # soc_sf = -1: raw 555
    sb.set("power_kw", -42.0)  # w_sf = 1, scale 0.001: raw -4200 → s16 round trip
    sc.set("power_kw", 7.364)  # u32 little-endian word order
    sc.set("session_energy_kwh", 70_000.5)  # needs both words
    db = ModbusDriver("bat", battery, host="127.0.0.1", port=sb.port, clock=clock)
    dc = ModbusDriver("evse", charger, host="127.0.0.1", port=sc.port, clock=clock)
    await db.start()
    await dc.start()
    rb, rc = await db.read(), await dc.read()
    assert rb.values["soc_pct"] == pytest.approx(55.5)
    assert rb.values["power_kw"] == pytest.approx(-42.0)
    assert rb.values["watchdog_s"] == 60
    assert rc.values["power_kw"] == pytest.approx(7.364)
    assert rc.values["session_energy_kwh"] == pytest.approx(70_000.5)
    assert rc.values["enabled"] == 1.0 and rc.values["plugged"] == 0.0
    assert rb.ts == clock.now() and rb.device_id == "bat"
    await db.close()
    await dc.close()


@pytest.mark.parametrize(("max_read_gap", "requests"), [(0, 2), (89, 1)])
async def test_a_read_takes_one_request_per_block(
    serve: ServeFn, max_read_gap: int, requests: int
) -> None:
    clock = VirtualClock()
    # An 89-register gap before the control block: two blocks, or one read across the gap.
    battery = bundled("sunspec-battery").model_copy(update={"max_read_gap": max_read_gap})
    s = await serve(battery, clock)
    s.set("soc_pct", 55.5)
    s.set("watchdog_s", 90)
    d = ModbusDriver("bat", battery, host="127.0.0.1", port=s.port, clock=clock)
    r = await d.read()
    assert s.requests == len(codec.plan_reads(battery)) == requests
    assert (r.values["soc_pct"], r.values["watchdog_s"]) == (pytest.approx(55.5), 90)
    assert set(r.values) == set(battery.points)
    await d.close()


async def test_more_than_125_registers_are_split_into_several_requests(serve: ServeFn) -> None:
    clock = VirtualClock()
    points = {f"p{i}": {"table": "input", "address": i} for i in range(200)}
    points.update(import_power_kw={"table": "input", "address": 200, "type": "f32"})
    points.update(import_energy_kwh={"table": "input", "address": 202, "type": "u32"})
    points.update(export_energy_kwh={"table": "input", "address": 204, "type": "u32"})
    big = parse_profile({"name": "big", "kind": "meter", "points": points})
    assert not isinstance(big, type(None))
    s = await serve(big, clock)  # type: ignore[arg-type]
    s.set("p130", 130)
    s.set("import_power_kw", 12.5)
    d = ModbusDriver("m", big, host="127.0.0.1", port=s.port, clock=clock)  # type: ignore[arg-type]
    r = await d.read()
    assert s.requests == 2  # 206 registers: 125 + 81
    assert r.values["p130"] == 130 and r.values["import_power_kw"] == 12.5
    await d.close()


async def test_out_of_range_setpoint_is_clamped_never_sent_raw(serve: ServeFn) -> None:
    clock = VirtualClock()
    battery = bundled("sunspec-battery")
    s = await serve(battery, clock)
    d = ModbusDriver(
        "bat",
        battery,
        host="127.0.0.1",
        port=s.port,
        clock=clock,
        limits={"power_setpoint_kw": (-80.0, 60.0)},
    )
    with capture_logs() as logs:
        res = await d.write("power_setpoint_kw", 400.0)
        low = await d.write("power_setpoint_kw", -1000.0)
        ok = await d.write("power_setpoint_kw", 12.345)
    assert (res.requested, res.written, res.clamped, res.verified) == (400.0, 60.0, True, True)
    assert (low.written, low.clamped) == (-80.0, True)
    assert (ok.written, ok.clamped, ok.verified) == (12.345, False, True)
    clamps = [e for e in logs if e["event"] == "setpoint_clamped"]
    assert [c["requested"] for c in clamps] == [400.0, -1000.0]
    # What crossed the wire: only clamped raw values (s32, scale 0.001, big word order).
    sent = [
        codec.registers_to_raw(w, battery.points["power_setpoint_kw"].type, "big")
        for _, _, w in s.writes
    ]
    assert sent == [60_000, -80_000, 12_345]
    assert s.get("power_setpoint_kw") == pytest.approx(12.345)
    await d.close()


async def test_profile_range_applies_without_site_limits_and_bools_are_0_or_1(
    serve: ServeFn,
) -> None:
    clock = VirtualClock()
    hvac = bundled("hvac-zone")
    s = await serve(hvac, clock)
    d = ModbusDriver("zone", hvac, host="127.0.0.1", port=s.port, clock=clock)
    res = await d.write("setpoint_c", 5.0)
    assert (res.written, res.clamped, res.verified) == (16.0, True, True)
    off = await d.write("on_off", 0.0)
    assert off.written == 0.0 and not off.clamped
    r = await d.read()
    assert r.values["setpoint_c"] == 16.0 and r.values["on_off"] == 0.0
    await d.close()


async def test_writes_to_unknown_read_only_or_non_finite_points_are_refused(
    serve: ServeFn,
) -> None:
    clock = VirtualClock()
    battery = bundled("sunspec-battery")
    s = await serve(battery, clock)
    d = ModbusDriver("bat", battery, host="127.0.0.1", port=s.port, clock=clock)
    with pytest.raises(PointError, match=r"bat\.soc_pct is read-only"):
        await d.write("soc_pct", 50)
    with pytest.raises(PointError, match="no point nope"):
        await d.write("nope", 1)
    with pytest.raises(PointError, match="not a finite number"):
        await d.write("power_setpoint_kw", float("nan"))
    with pytest.raises(PointError, match=r"limits.nope"):
        ModbusDriver("x", battery, host="127.0.0.1", port=1, clock=clock, limits={"nope": (0, 1)})
    assert s.writes == []
    await d.close()


async def test_exception_answer_is_reported_with_its_code(serve: ServeFn) -> None:
    clock = VirtualClock()
    battery = bundled("sunspec-battery")
    s = await serve(battery, clock)
    d = ModbusDriver("bat", battery, host="127.0.0.1", port=s.port, clock=clock)
    s.exception_code = 4
    with pytest.raises(DeviceError) as e:
        await d.read()
    assert e.value.exception_code == 4 and "exception code 4" in e.value.reason
    with pytest.raises(DeviceError) as w:
        await d.write("watchdog_s", 30)
    assert w.value.exception_code == 4
    assert d.health.exception_code == 4
    s.exception_code = None
    assert (await d.read()).values["watchdog_s"] == 60
    await d.close()


async def test_timeout_is_on_the_clock_and_the_driver_reconnects(serve: ServeFn) -> None:
    clock = VirtualClock()
    battery = bundled("sunspec-battery")
    s = await serve(battery, clock)
    d = ModbusDriver("bat", battery, host="127.0.0.1", port=s.port, clock=clock, timeout_s=1.5)
    s.delay_s = 5.0
    t0 = clock.monotonic()
    with pytest.raises(DeviceError, match=r"no answer within 1.5 s"):
        await d.read()
    assert clock.monotonic() - t0 == pytest.approx(1.5)  # virtual seconds, not wall time
    s.delay_s = 0.0
    await clock.sleep(10)  # let the late answer and the dropped connection pass
    assert (await d.read()).values["watchdog_s"] == 60
    await d.close()


async def test_a_device_that_is_down_fails_as_connection_lost() -> None:
    from tests.devices.profile_server import free_port

    clock = VirtualClock()
    d = ModbusDriver("gone", bundled("site-meter"), host="127.0.0.1", port=free_port(), clock=clock)
    await d.start()  # does not raise
    with pytest.raises(DeviceError) as e:
        await d.read()
    assert e.value.connection_lost and "cannot connect" in e.value.reason
    assert d.health.state == "offline"
