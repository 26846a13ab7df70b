"""Poll phases: spread over each period, every phase on the `stagger_slot_s` grid (a site's
control cycle), with real pymodbus servers on the VirtualClock (exact simulated instants)."""

from __future__ import annotations

from typing import Any

from devices.clock import VirtualClock
from devices.modbus_driver import ModbusDriver
from devices.poller import Poller
from tests.devices.conftest import ServeFn, bundled


async def _poll_times(
    serve: ServeFn, slot_s: float | None, fast: int, slow: int, *, read_at_start: bool = False
) -> dict[str, list[float]]:
    """When each device's readings were taken over 2 simulated minutes: `fast` devices every
    5 s, `slow` every 60 s."""
    clock = VirtualClock()
    meter = bundled("site-meter")  # one request per read
    servers = [await serve(meter, clock) for _ in range(fast + slow)]
    drivers = [
        ModbusDriver(f"d{i}", meter, host="127.0.0.1", port=s.port, clock=clock)
        for i, s in enumerate(servers)
    ]
    periods = {d.id: 60.0 for d in drivers[fast:]}
    kw: dict[str, Any] = {"read_at_start": read_at_start}
    if slot_s is not None:
        kw["stagger_slot_s"] = slot_s
    seen: dict[str, list[float]] = {d.id: [] for d in drivers}
    async with Poller(drivers, clock=clock, period_s=5.0, periods=periods, **kw) as poller:
        for k in range(1, 240):  # bounded: 119.5 simulated s in 0.5 s steps
            await clock.sleep_until(k * 0.5)
            for d in drivers:
                r = poller.latest(d.id)
                if r is not None and (not seen[d.id] or seen[d.id][-1] != r.monotonic_s):
                    seen[d.id].append(r.monotonic_s)
    return seen


async def test_phases_on_the_control_cycle_are_multiples_of_it(serve: ServeFn) -> None:
    seen = await _poll_times(serve, 5.0, fast=2, slow=5)
    instants = {t for ts in seen.values() for t in ts}
    assert instants and all(t % 5.0 == 0.0 for t in instants), sorted(instants)
    # The slow group still spreads over its minute (5 devices, 5 distinct phases), each polled
    # once a minute; the fast group on every cycle.
    slow_first = sorted(seen[f"d{i}"][0] for i in range(2, 7))
    assert len(set(slow_first)) == 5 and slow_first[-1] < 60.0
    assert all(len(seen[f"d{i}"]) == 2 for i in range(2, 7))
    assert seen["d0"] == seen["d1"] == [5.0 * k for k in range(24)]


async def test_phases_without_a_cycle_spread_evenly(serve: ServeFn) -> None:
    seen = await _poll_times(serve, None, fast=2, slow=5)
    assert sorted(ts[0] for ts in list(seen.values())[2:]) == [0.0, 12.0, 24.0, 36.0, 48.0]
    assert [seen["d0"][0], seen["d1"][0]] == [0.0, 2.5]


async def test_read_at_start_reads_every_device_at_once_then_keeps_its_phase(
    serve: ServeFn,
) -> None:
    """A 60-s device on a late phase is known at the start, not up to 55 s later."""
    seen = await _poll_times(serve, 5.0, fast=2, slow=5, read_at_start=True)
    assert all(ts[0] == 0.0 for ts in seen.values()), seen
    plain = await _poll_times(serve, 5.0, fast=2, slow=5)
    for i in range(2, 7):  # then the same phase grid as without the start's read
        d = f"d{i}"
        assert seen[d] == sorted({0.0, *plain[d]}), (d, seen[d], plain[d])
    assert seen["d0"] == plain["d0"] == [5.0 * k for k in range(24)]
