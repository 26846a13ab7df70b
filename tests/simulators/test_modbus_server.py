"""Every point of every Modbus profile over a real socket, and the exception answers."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ModbusPDU

from building.params import BatteryParams, EvChargerParams, EvSessionSpec
from devices.clock import VirtualClock
from devices.codec import decode, encode, scale_of
from devices.profile import ModbusPoint, ModbusProfile, PointType, Table
from simulators.site import SimDeviceSpec, SimulatedSite
from tests.simulators.conftest import modbus_profiles, profile

PARAMS = {
    "ev-charger-modbus": EvChargerParams(
        sessions=[EvSessionSpec(arrival=0.0, departure=7200.0, energy_needed_kwh=30)]
    ),
    "sunspec-battery": BatteryParams(initial_soc_pct=63.4),
}


async def _read(c: AsyncModbusTcpClient, table: Table, address: int, count: int, unit: int) -> Any:
    if table is Table.holding:
        return await c.read_holding_registers(address, count=count, device_id=unit)
    if table is Table.input:
        return await c.read_input_registers(address, count=count, device_id=unit)
    if table is Table.coil:
        return await c.read_coils(address, count=count, device_id=unit)
    return await c.read_discrete_inputs(address, count=count, device_id=unit)


def _words(rr: ModbusPDU, p: ModbusPoint) -> list[int]:
    if p.type is PointType.bool:
        return [int(rr.bits[0])]
    return list(rr.registers)


def _resolution(prof: ModbusProfile, p: ModbusPoint, state: dict[str, float]) -> float:
    sf = (
        int(state.get(p.scale_factor, prof.points[p.scale_factor].default or 0))
        if p.scale_factor
        else None
    )
    return abs(scale_of(p, sf))


def _write_value(p: ModbusPoint, current: float) -> float:
    if p.type is PointType.bool:
        return 0.0 if current else 1.0
    assert p.min is not None and p.max is not None
    v = p.min + (p.max - p.min) * 0.37
    return v if p.type is PointType.f32 else round(v / p.scale) * p.scale


@pytest.mark.parametrize("prof", modbus_profiles(), ids=lambda p: p.name)
async def test_every_point_reads_and_writes_over_tcp(prof: ModbusProfile) -> None:
    clock = VirtualClock()
    spec = SimDeviceSpec("dev", prof, PARAMS.get(prof.name))
    async with SimulatedSite(clock, [spec]) as site:
        await clock.sleep(90)  # let the physics run: SoC, sessions, temperatures move
        ep = site.endpoints()[0]
        assert ep.port > 0 and ep.unit_id == prof.unit_id
        async with AsyncModbusTcpClient(ep.host, port=ep.port, timeout=2, retries=0) as c:
            for name, p in prof.points.items():
                rr = await _read(c, p.table, p.address, p.count, prof.unit_id)
                assert not rr.isError(), (name, rr)
                state = site.state()["dev"]
                values = {**{n: q.default or 0.0 for n, q in prof.points.items()}, **state}
                sf = int(values[p.scale_factor]) if p.scale_factor else None
                got = decode(p, _words(rr, p), prof.word_order_of(p), sf)
                assert got == pytest.approx(
                    values[name], abs=_resolution(prof, p, values) / 2 + 1e-6
                ), name
            for name, p in prof.points.items():
                if p.access != "rw":
                    continue
                state = site.state()["dev"]
                new = _write_value(p, state.get(name, p.default or 0.0))
                if p.type is PointType.bool:
                    wr = await c.write_coil(p.address, bool(new), device_id=prof.unit_id)
                else:
                    regs = encode(p, new, prof.word_order_of(p), None)
                    wr = await c.write_registers(p.address, regs, device_id=prof.unit_id)
                assert not wr.isError(), (name, wr)
                assert site.state()["dev"][name] == pytest.approx(new, abs=1e-6), name
                rr = await _read(c, p.table, p.address, p.count, prof.unit_id)
                back = decode(p, _words(rr, p), prof.word_order_of(p), None)
                assert back == pytest.approx(new, abs=1e-6), name


def _client(port: int) -> AsyncModbusTcpClient:
    return AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)


async def _battery_site(clock: VirtualClock, **kw: Any) -> SimulatedSite:
    return SimulatedSite(
        clock, [SimDeviceSpec("bat", profile("sunspec-battery"), BatteryParams(), **kw)]
    )


async def test_exception_answers_follow_the_profile() -> None:
    clock = VirtualClock()
    # Without max_read_gap: no read may touch an unmapped address.
    bat = profile("sunspec-battery").model_copy(update={"max_read_gap": 0})
    hvac = profile("hvac-zone")
    specs = [SimDeviceSpec("bat", bat), SimDeviceSpec("hvac", hvac)]
    async with SimulatedSite(clock, specs) as site:
        eps = {e.id: e for e in site.endpoints()}
        async with AsyncModbusTcpClient(
            "127.0.0.1", port=eps["bat"].port, timeout=2, retries=0
        ) as c:
            # Across the gap between the status block (..40010) and the control block (40100).
            rr = await c.read_holding_registers(40009, count=3, device_id=1)
            assert rr.isError() and rr.exception_code == 2
            rr = await c.read_holding_registers(40050, count=1, device_id=1)
            assert rr.isError() and rr.exception_code == 2
            rr = await c.read_input_registers(0, count=1, device_id=1)  # no input table at all
            assert rr.isError() and rr.exception_code == 2
            # Read-only point.
            rr = await c.write_register(40006, 500, device_id=1)
            assert rr.isError() and rr.exception_code == 2
            # Outside min/max: WSet is [-250, 250] kW.
            regs = c.convert_to_registers(300_000, c.DATATYPE.INT32)
            rr = await c.write_registers(40101, regs, device_id=1)
            assert rr.isError() and rr.exception_code == 3
            assert site.state()["bat"]["power_setpoint_kw"] == 0.0
            rr = await c.write_register(40100, 2, device_id=1)  # control_mode max 1
            assert rr.isError() and rr.exception_code == 3
            # A write that spans a writable and an undefined address.
            rr = await c.write_registers(40104, [10, 0], device_id=1)
            assert rr.isError() and rr.exception_code == 2
            # In range: accepted and applied.
            regs = c.convert_to_registers(-20_000, c.DATATYPE.INT32)
            rr = await c.write_registers(40101, regs, device_id=1)
            assert not rr.isError()
            assert site.state()["bat"]["power_setpoint_kw"] == pytest.approx(-20.0)
        async with AsyncModbusTcpClient(
            "127.0.0.1", port=eps["hvac"].port, timeout=2, retries=0
        ) as c:
            rr = await c.write_register(4, 400, device_id=1)  # 40.0 degC > max 32
            assert rr.isError() and rr.exception_code == 3
            rr = await c.write_register(4, 255, device_id=1)  # 25.5 degC
            assert not rr.isError()
            assert site.state()["hvac"]["setpoint_c"] == pytest.approx(25.5)
            rr = await c.read_coils(0, count=2, device_id=1)  # coil 1 is not defined
            assert rr.isError() and rr.exception_code == 2
            rr = await c.write_coil(3, True, device_id=1)
            assert rr.isError() and rr.exception_code == 2
            rr = await c.read_input_registers(0, count=4, device_id=1)  # input 3 undefined
            assert rr.isError() and rr.exception_code == 2


async def test_reads_span_gaps_up_to_max_read_gap_and_writes_never() -> None:
    clock = VirtualClock()
    bat = profile("sunspec-battery")  # max_read_gap 100: 40011..40099 (89) are readable
    hvac = profile("hvac-zone").model_copy(update={"max_read_gap": 4})  # 1..3 yes, 5..9 no
    specs = [SimDeviceSpec("bat", bat, BatteryParams(initial_soc_pct=63.4))]
    specs.append(SimDeviceSpec("hvac", hvac))
    async with SimulatedSite(clock, specs) as site:
        eps = {e.id: e for e in site.endpoints()}
        async with _client(eps["bat"].port) as c:
            rr = await c.read_holding_registers(40000, count=105, device_id=1)
            assert not rr.isError()
            assert rr.registers[6] == 634  # soc_pct, 0.1 % (soc_sf -1)
            assert rr.registers[11:100] == [0] * 89  # the gap, answered as 0
            assert rr.registers[103] == 60  # watchdog_s, the battery default
            rr = await c.read_holding_registers(40100, count=6, device_id=1)  # past the end
            assert rr.isError() and rr.exception_code == 2
            rr = await c.read_holding_registers(39999, count=2, device_id=1)  # before the start
            assert rr.isError() and rr.exception_code == 2
            rr = await c.write_register(40050, 1, device_id=1)  # a gap is never writable
            assert rr.isError() and rr.exception_code == 2
        async with _client(eps["hvac"].port) as c:
            rr = await c.read_holding_registers(0, count=5, device_id=1)  # gap 1..3: 3 long
            assert not rr.isError() and rr.registers[1:4] == [0, 0, 0]
            rr = await c.read_holding_registers(4, count=7, device_id=1)  # gap 5..9: 5 long
            assert rr.isError() and rr.exception_code == 2


async def test_a_request_completes_within_one_virtual_instant() -> None:
    clock = VirtualClock()
    async with await _battery_site(clock) as site:
        port = site.endpoints()[0].port
        async with AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0) as c:
            for _ in range(5):
                t0 = clock.monotonic()
                rr = await c.read_holding_registers(40000, count=11, device_id=1)
                assert not rr.isError()
                assert clock.monotonic() == t0
                await clock.sleep(10)
        assert site.steps >= 49  # the physics wakes after the test at t=50


WITH_SETPOINTS = [
    p
    for p in modbus_profiles()
    if any(q.access == "rw" and q.type is not PointType.bool for q in p.points.values())
]


@pytest.mark.parametrize("prof", WITH_SETPOINTS, ids=lambda p: p.name)
async def test_every_writable_point_refuses_values_outside_its_range(prof: ModbusProfile) -> None:
    clock = VirtualClock()
    async with SimulatedSite(clock, [SimDeviceSpec("dev", prof, PARAMS.get(prof.name))]) as site:
        port = site.endpoints()[0].port
        async with _client(port) as c:
            checked = 0
            for name, p in prof.points.items():
                if p.access != "rw" or p.type is PointType.bool:
                    continue
                assert p.min is not None and p.max is not None
                before = site.state()["dev"].get(name)
                step = abs(p.scale)  # one raw count (no scale factor on writable points)
                for bad in (p.max + step, p.min - step):
                    try:
                        regs = encode(p, bad, prof.word_order_of(p), None)
                    except ValueError:
                        continue  # not representable in the register type (u16 below 0)
                    wr = await c.write_registers(p.address, regs, device_id=prof.unit_id)
                    assert wr.isError() and wr.exception_code == 3, (name, bad, wr)
                    checked += 1
                assert site.state()["dev"].get(name) == before, name
            assert checked > 0


async def _raw(port: int, data: bytes, answers: int) -> list[bytes]:
    """Send raw bytes and read `answers` MBAP frames back (tid, unit and PDU each)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        out = []
        for _ in range(answers):
            head = await asyncio.wait_for(reader.readexactly(6), 5)
            length = int.from_bytes(head[4:6], "big")
            out.append(head[:2] + await asyncio.wait_for(reader.readexactly(length), 5))
        return out
    finally:
        writer.close()


def _frame(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


async def test_frames_pipelined_split_and_refused_as_a_device_answers() -> None:
    clock = VirtualClock()
    async with await _battery_site(clock) as site:
        port = site.endpoints()[0].port
        soc = struct.pack(">BHH", 3, 40006, 1)  # soc_pct: 50 % (the default) as 500
        # Two requests in one segment: two answers, in order.
        both = _frame(1, 1, soc) + _frame(2, 1, struct.pack(">BHH", 3, 40009, 2))
        got = await _raw(port, both, 2)
        assert got == [
            b"\x00\x01\x01" + bytes((3, 2)) + struct.pack(">H", 500),
            b"\x00\x02\x01" + bytes((3, 4)) + struct.pack(">hh", 1, -1),  # w_sf, soc_sf
        ]
        # One request split over two segments: one answer.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        frame = _frame(9, 1, soc)
        writer.write(frame[:5])
        await writer.drain()
        await clock.sleep(0)
        writer.write(frame[5:])
        head = await asyncio.wait_for(reader.readexactly(11), 5)
        assert head[:2] == b"\x00\x09" and head[-2:] == struct.pack(">H", 500)
        writer.close()
        # Unknown unit id: 0x0B; unknown function code: 01; a count of 0 or 126: 03.
        refused = [
            _frame(3, 7, soc),
            _frame(4, 1, struct.pack(">BHH", 8, 0, 0)),
            _frame(5, 1, struct.pack(">BHH", 3, 40000, 0)),
            _frame(6, 1, struct.pack(">BHH", 3, 40000, 126)),
        ]
        got = await _raw(port, b"".join(refused), 4)
        assert [g[3:] for g in got] == [b"\x83\x0b", b"\x88\x01", b"\x83\x03", b"\x83\x03"]
        # 23: write the reserve (40104 = 35 %), read it back with the watchdog, in one request.
        rw = struct.pack(">BHHHHBH", 23, 40103, 2, 40104, 1, 2, 35)
        (got23,) = await _raw(port, _frame(7, 1, rw), 1)
        assert got23[3:] == bytes((23, 4)) + struct.pack(">HH", 60, 35)
        assert site.state()["bat"]["soc_reserve_pct"] == 35
