"""How many Modbus devices one agent process polls at a 1 s period, against the raw limit.

Run: `PYTHONPATH=. .venv/bin/python bench/poll.py --devices 2000 --seconds 20`

Devices are plain pymodbus servers (no physics) in separate processes, so the agent
process's CPU (time.process_time) is measured alone. The agent side is the real stack:
one ModbusDriver per device (own TCP connection) under the Poller on the WallClock. In the
same run, a raw pymodbus client loop reading the same registers gives the limit: back to
back on one connection and on 50 concurrent connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing as mp
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice
from pymodbus.simulator.simutils import DataType

from devices.clock import WallClock
from devices.modbus_driver import ModbusDriver
from devices.poller import Poller
from devices.profile import ModbusProfile, parse_profile


def _note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bench_profile(points: int) -> ModbusProfile:
    """A meter with `points` points in one contiguous holding block (f32, u32, s16, u16)."""
    pts: dict[str, Any] = {
        "import_power_kw": {"table": "holding", "address": 0, "type": "f32"},
        "import_energy_kwh": {"table": "holding", "address": 2, "type": "u32", "scale": 0.1},
        "export_energy_kwh": {"table": "holding", "address": 4, "type": "u32", "scale": 0.1},
    }
    for i in range(points - 3):
        pts[f"phase_value_{i}"] = {"table": "holding", "address": 6 + i, "type": "s16"}
    p = parse_profile({"name": "bench-meter", "kind": "meter", "points": pts})
    assert isinstance(p, ModbusProfile)
    return p


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _serve(ports: list[int], registers: int, ready: Any) -> None:
    """Child process: one pymodbus TCP server per port, all in one event loop."""
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

    async def main() -> None:
        servers = []
        for port in ports:
            dev = SimDevice(
                id=1,
                simdata=[SimData(0, values=list(range(registers)), datatype=DataType.REGISTERS)],
            )
            srv = ModbusTcpServer(dev, address=("127.0.0.1", port))
            await srv.serve_forever(background=True)
            servers.append(srv)
        ready.send(True)
        await asyncio.Event().wait()

    asyncio.run(main())


def start_servers(n: int, registers: int, processes: int) -> tuple[list[int], list[Any]]:
    ports = _free_ports(n)
    procs = []
    ctx = mp.get_context("spawn")
    for k in range(processes):
        mine = ports[k::processes]
        a, b = ctx.Pipe()
        p = ctx.Process(target=_serve, args=(mine, registers, b), daemon=True)
        p.start()
        procs.append((p, a))
    for _, a in procs:
        if not a.poll(120):
            raise RuntimeError("server process did not start")
        a.recv()
    return ports, [p for p, _ in procs]


async def measure_poller(
    ports: list[int], profile: ModbusProfile, seconds: float, warmup: float
) -> dict[str, float]:
    clock = WallClock()
    drivers = [
        ModbusDriver(f"m{i}", profile, host="127.0.0.1", port=port, clock=clock, timeout_s=2.0)
        for i, port in enumerate(ports)
    ]
    async with Poller(drivers, clock=clock, period_s=1.0) as poller:
        await asyncio.sleep(warmup)
        poller.reset_stats()
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        st = poller.stats()
        online = sum(1 for d in poller.device_ids if poller.health(d).state == "online")
    return {
        "devices": len(ports),
        "online": online,
        "polls_per_s": st.polls / wall,
        "cpu_pct_of_core": 100 * cpu / wall,
        "cpu_us_per_poll": 1e6 * cpu / max(1, st.polls),
        "lateness_p50_ms": 1e3 * st.lateness_p50_s,
        "lateness_p99_ms": 1e3 * st.lateness_p99_s,
        "lateness_max_ms": 1e3 * st.lateness_max_s,
        "missed_ticks": st.missed_ticks,
        "failing_devices": st.failing_devices,
    }


async def measure_raw(
    ports: list[int], registers: int, conns: int, seconds: float
) -> dict[str, float]:
    """The limit: raw pymodbus reads of `registers` back to back on `conns` connections."""
    clients = []
    for port in ports[:conns]:
        c = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
        await c.connect()
        clients.append(c)
    lat: list[float] = []
    stop = time.monotonic() + seconds

    async def loop(c: AsyncModbusTcpClient) -> None:
        while time.monotonic() < stop:
            t = time.perf_counter()
            rr = await c.read_holding_registers(0, count=registers, device_id=1)
            lat.append(time.perf_counter() - t)
            assert not rr.isError()

    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.gather(*(loop(c) for c in clients))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    for c in clients:
        c.close()
    return {
        "connections": conns,
        "reads_per_s": len(lat) / wall,
        "p50_ms": 1e3 * statistics.median(lat),
        "cpu_us_per_read": 1e6 * cpu / len(lat),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--points", type=int, default=16, help="points per device (10 to 20)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--server-processes", type=int, default=2)
    ap.add_argument("--raw-seconds", type=float, default=5.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        processors=[structlog.processors.JSONRenderer()],
    )
    profile = bench_profile(args.points)
    registers = max(p.address + p.count for p in profile.points.values())
    t0 = time.monotonic()
    ports, procs = start_servers(args.devices, registers, args.server_processes)
    _note(f"{len(ports)} servers up in {time.monotonic() - t0:.1f} s")
    try:
        agent = asyncio.run(measure_poller(ports, profile, args.seconds, args.warmup))
        _note(f"agent: {agent}")
        raw1 = asyncio.run(measure_raw(ports, registers, 1, args.raw_seconds))
        raw50 = asyncio.run(measure_raw(ports, registers, min(50, len(ports)), args.raw_seconds))
    finally:
        for p in procs:
            p.terminate()
    out = {
        "points_per_device": args.points,
        "registers_per_read": registers,
        "agent": agent,
        "raw_1_connection": raw1,
        "raw_50_connections": raw50,
        "cpu_per_poll_vs_raw_50": agent["cpu_us_per_poll"] / raw50["cpu_us_per_read"],
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
