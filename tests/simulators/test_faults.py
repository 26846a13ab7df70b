"""Fault injection and the fail-safe watchdog, seen by a Modbus client over TCP."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from building.params import BatteryParams, EvChargerParams, HvacZoneParams
from devices.clock import VirtualClock
from simulators.faults import Faults
from simulators.site import SimDeviceSpec, SimulatedSite
from tests.simulators.conftest import profile

SOC, POWER, MODE, WSET, WATCHDOG = 40006, 40007, 40100, 40101, 40103


def _client(port: int) -> AsyncModbusTcpClient:
    return AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)


def _site(clock: VirtualClock, faults: Faults | None = None) -> SimulatedSite:
    spec = SimDeviceSpec("bat", profile("sunspec-battery"), BatteryParams(), faults=faults)
    return SimulatedSite(clock, [spec])


async def _command(c: AsyncModbusTcpClient, kw: float) -> None:
    regs = c.convert_to_registers(round(kw * 1000), c.DATATYPE.INT32)
    assert not (await c.write_registers(WSET, regs, device_id=1)).isError()
    assert not (await c.write_register(MODE, 1, device_id=1)).isError()


async def test_offline_refuses_connections_until_it_is_cleared() -> None:
    clock = VirtualClock()
    async with _site(clock, Faults(offline=True)) as site:
        port = site.endpoints()[0].port
        c = _client(port)
        assert await c.connect() is False
        await site.set_fault("bat", Faults())
        assert site.endpoints()[0].port == port
        assert await c.connect() is True
        rr = await c.read_holding_registers(SOC, count=1, device_id=1)
        assert not rr.isError()
        await site.set_fault("bat", Faults(offline=True))
        c.close()
        assert await c.connect() is False
        c.close()


async def test_delay_costs_clock_seconds_not_wall_seconds() -> None:
    clock = VirtualClock()
    async with _site(clock, Faults(delay_s=2.0)) as site:
        async with _client(site.endpoints()[0].port) as c:
            t0, w0 = clock.monotonic(), time.monotonic()
            rr = await c.read_holding_registers(SOC, count=1, device_id=1)
            assert not rr.isError()
            assert clock.monotonic() - t0 == pytest.approx(2.0)
            assert time.monotonic() - w0 < 1.0
            await site.set_fault("bat", Faults())
            t0 = clock.monotonic()
            await c.read_holding_registers(SOC, count=1, device_id=1)
            assert clock.monotonic() == t0


async def test_requests_without_delay_are_answered_without_a_task_each() -> None:
    """The server answers a request where it is read (a task only waits out a delay fault):
    a task less per request."""
    clock = VirtualClock()
    loop = asyncio.get_running_loop()
    created: list[asyncio.Task[object]] = []

    def factory(lp: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[object]:
        task: asyncio.Task[object] = asyncio.Task(coro, loop=lp, **kw)
        created.append(task)
        return task

    async with _site(clock) as site:
        async with _client(site.endpoints()[0].port) as c:
            loop.set_task_factory(factory)
            try:
                for _ in range(20):
                    rr = await c.read_holding_registers(SOC, count=1, device_id=1)
                    assert not rr.isError()
                plain = len(created)
                await site.set_fault("bat", Faults(delay_s=1.0))
                rr = await c.read_holding_registers(SOC, count=1, device_id=1)
                assert not rr.isError()
            finally:
                loop.set_task_factory(None)
    assert plain < 5, f"{plain} tasks for 20 requests"
    assert len(created) > plain  # the delayed answer waits in a task of its own


@pytest.mark.parametrize("code", [4, 6, 11])
async def test_exception_fault_answers_every_request(code: int) -> None:
    clock = VirtualClock()
    async with _site(clock, Faults(exception_code=code)) as site:
        async with _client(site.endpoints()[0].port) as c:
            rr = await c.read_holding_registers(SOC, count=1, device_id=1)
            assert rr.isError() and rr.exception_code == code
            rr = await c.write_register(MODE, 1, device_id=1)
            assert rr.isError() and rr.exception_code == code
            assert site.state()["bat"]["control_mode"] == 0


async def test_write_exception_fault_refuses_writes_and_answers_reads() -> None:
    clock = VirtualClock()
    async with _site(clock, Faults(write_exception_code=4)) as site:
        async with _client(site.endpoints()[0].port) as c:
            rr = await c.read_holding_registers(SOC, count=1, device_id=1)
            assert not rr.isError()
            rr = await c.write_register(MODE, 1, device_id=1)
            assert rr.isError() and rr.exception_code == 4
            assert site.state()["bat"]["control_mode"] == 0


async def test_stuck_values_freeze_while_the_physics_moves() -> None:
    clock = VirtualClock()
    async with _site(clock) as site:
        async with _client(site.endpoints()[0].port) as c:
            await _command(c, -50.0)
            await clock.sleep(10)
            await site.set_fault("bat", Faults(stuck=True))
            frozen = (await c.read_holding_registers(SOC, count=2, device_id=1)).registers
            await clock.sleep(30)
            again = (await c.read_holding_registers(SOC, count=2, device_id=1)).registers
            assert again == frozen
            assert frozen[1] == 0xFFFF & -5000  # -50 kW at 0.01 kW per count (W_SF 1)
            true_soc = site.state()["bat"]["soc_pct"]
            assert true_soc < frozen[0] / 10 - 0.1  # the battery kept discharging
            await site.set_fault("bat", Faults())
            live = (await c.read_holding_registers(SOC, count=1, device_id=1)).registers
            assert live[0] == round(site.state()["bat"]["soc_pct"] * 10)


async def test_ignored_commands_are_accepted_but_not_applied() -> None:
    clock = VirtualClock()
    async with _site(clock, Faults(ignore_commands=True)) as site:
        async with _client(site.endpoints()[0].port) as c:
            await _command(c, 40.0)
            await clock.sleep(5)
            state = site.state()["bat"]
            assert state["control_mode"] == 0 and state["power_kw"] == 0
            back = await c.read_holding_registers(MODE, count=1, device_id=1)
            assert back.registers == [0]  # a verifying driver sees the write did not take


async def test_battery_watchdog_falls_back_after_its_timeout_and_not_before() -> None:
    clock = VirtualClock()
    async with _site(clock) as site:
        async with _client(site.endpoints()[0].port) as c:
            assert not (await c.write_register(WATCHDOG, 30, device_id=1)).isError()
            await _command(c, 20.0)
            t0 = clock.monotonic()
            await clock.sleep_until(t0 + 29.5)
            rr = await c.read_holding_registers(POWER, count=1, device_id=1)
            assert rr.registers == [2000]  # 20 kW
            assert (await c.read_holding_registers(MODE, count=1, device_id=1)).registers == [1]
            await clock.sleep_until(t0 + 30.5)
            assert (await c.read_holding_registers(MODE, count=1, device_id=1)).registers == [0]
            await clock.sleep(2)
            assert site.state()["bat"]["power_kw"] == 0
            assert site.devices["bat"].model.fallbacks == 1
            # Re-asserting the setpoint in time keeps it.
            await _command(c, 20.0)
            for _ in range(5):
                await clock.sleep(20)
                await _command(c, 20.0)
            assert site.state()["bat"]["power_kw"] == pytest.approx(20.0)
            assert site.devices["bat"].model.fallbacks == 1


async def test_ev_and_hvac_watchdogs_restore_their_defaults() -> None:
    clock = VirtualClock()
    specs = [
        SimDeviceSpec("ev", profile("ev-charger-modbus"), EvChargerParams(default_limit_kw=11)),
        SimDeviceSpec("zone", profile("hvac-zone"), HvacZoneParams(local_setpoint_c=24)),
    ]
    async with SimulatedSite(clock, specs) as site:
        eps = {e.id: e for e in site.endpoints()}
        async with _client(eps["ev"].port) as c:
            assert not (await c.write_register(5000, 40, device_id=255)).isError()  # 4.0 kW
        async with _client(eps["zone"].port) as c:
            assert not (await c.write_register(4, 270, device_id=1)).isError()  # 27.0 degC
            assert not (await c.write_register(10, 20, device_id=1)).isError()  # 2.0 kW
        await clock.sleep(59)
        assert site.state()["ev"]["power_limit_kw"] == pytest.approx(4.0)
        assert site.state()["zone"]["setpoint_c"] == pytest.approx(27.0)
        await clock.sleep(2)
        assert site.state()["ev"]["power_limit_kw"] == pytest.approx(11.0)
        assert site.state()["zone"]["setpoint_c"] == pytest.approx(24.0)
        assert site.state()["zone"]["power_limit_kw"] == pytest.approx(15.0)
