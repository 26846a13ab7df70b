"""Interoperability with a Modbus client that is not Python: libmodbus' mbpoll."""

from __future__ import annotations

import asyncio
import re

import pytest
from pymodbus.client import AsyncModbusTcpClient

from building.params import BatteryParams
from devices.clock import VirtualClock
from simulators.site import SimDeviceSpec, SimulatedSite
from tests.simulators.conftest import profile

MBPOLL = "/usr/bin/mbpoll"


async def mbpoll(
    clock: VirtualClock, port: int, *args: str, write: list[int] | None = None
) -> tuple[int, str]:
    """Run mbpoll once against 127.0.0.1:port (writing `write` if given); virtual time
    stands still meanwhile."""
    tail = ["127.0.0.1", *(["--", *map(str, write)] if write else [])]
    async with clock.hold():
        proc = await asyncio.create_subprocess_exec(
            MBPOLL, "-m", "tcp", "-1", "-o", "2", "-p", str(port), *args, *tail,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    return proc.returncode or 0, out.decode()


def values(out: str) -> dict[int, int]:
    """{reference: value} from mbpoll's `[40007]: 634` lines."""
    return {int(r): int(v) for r, v in re.findall(r"^\[(\d+)\]:\s+(-?\d+)", out, re.M)}


async def test_mbpoll_reads_the_battery_and_writes_its_setpoint() -> None:
    clock = VirtualClock()
    spec = SimDeviceSpec("bat", profile("sunspec-battery"), BatteryParams(initial_soc_pct=63.4))
    async with SimulatedSite(clock, [spec]) as site:
        port = site.endpoints()[0].port
        # 1-based references: protocol address 40002 is reference 40003.
        rc, out = await mbpoll(clock, port, "-a", "1", "-t", "4", "-r", "40003", "-c", "9")
        assert rc == 0, out
        got = values(out)
        # capacity (u32 high word first: 200 kWh = 200000 Wh) then the u16 points.
        assert got[40003] * 65536 + got[40004] == 200_000
        assert got[40007] == 634  # SoC 63.4 % with SoC_SF -1
        assert got[40008] == 0  # power, idle
        assert got[40010] == 1  # W_SF
        # The same registers as a Python client reads them (time has not moved).
        async with AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0) as c:
            rr = await c.read_holding_registers(40002, count=9, device_id=1)
        assert rr.registers == [got[40003 + i] for i in range(9)]
        # Write WSet = -30 kW as a big-endian int32 (-B: high word first), then remote mode.
        rc, out = await mbpoll(
            clock, port, "-a", "1", "-t", "4:int", "-B", "-r", "40102", write=[-30000]
        )
        assert rc == 0, out
        rc, out = await mbpoll(clock, port, "-a", "1", "-t", "4", "-r", "40101", write=[1])
        assert rc == 0, out
        assert site.state()["bat"]["power_setpoint_kw"] == pytest.approx(-30.0)
        await clock.sleep(10)
        assert site.state()["bat"]["power_kw"] == pytest.approx(-30.0)
        rc, out = await mbpoll(clock, port, "-a", "1", "-t", "4:int", "-B", "-r", "40102")
        assert rc == 0, out
        assert values(out)[40102] == -30000
        rc, out = await mbpoll(clock, port, "-a", "1", "-t", "4", "-r", "40008")
        assert values(out)[40008] == 0x10000 - 3000  # -30 kW, u16 display of an s16
        # A setpoint outside [-250, 250] kW is refused with exception 03.
        rc, out = await mbpoll(
            clock, port, "-a", "1", "-t", "4:int", "-B", "-r", "40102", write=[300000]
        )
        assert rc != 0
        assert "Illegal data value" in out
        # Past the last point (the gap before 40100 is readable: max_read_gap).
        rc, out = await mbpoll(clock, port, "-a", "1", "-t", "4", "-r", "40106")
        assert rc != 0 and "Illegal data address" in out
