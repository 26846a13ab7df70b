"""Acceptance fault tests: the Poller with the Modbus driver against real pymodbus servers,
on the VirtualClock (so "2 s late" and "two poll periods" are exact simulated seconds)."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from devices.clock import VirtualClock
from devices.health import HealthState
from devices.modbus_driver import ModbusDriver
from devices.poller import HealthChange, Poller
from tests.devices.conftest import ServeFn, bundled


def drain(q: asyncio.Queue[HealthChange]) -> list[HealthChange]:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


async def test_killed_device_goes_offline_within_two_periods_and_comes_back(
    serve: ServeFn,
) -> None:
    clock = VirtualClock()
    battery = bundled("sunspec-battery")
    victim, other = await serve(battery, clock), await serve(battery, clock)
    drivers = [
        ModbusDriver(n, battery, host="127.0.0.1", port=s.port, clock=clock, timeout_s=0.5)
        for n, s in (("victim", victim), ("other", other))
    ]
    with capture_logs() as logs:
        async with Poller(drivers, clock=clock, period_s=1.0, max_backoff_s=2.0) as poller:
            changes = poller.subscribe()
            await clock.sleep_until(3.2)
            assert poller.health("victim").state is HealthState.online
            assert {c.health.state for c in drain(changes)} == {HealthState.online}
            killed_at = clock.monotonic()
            await victim.stop()
            for _ in range(40):  # bounded: 40 × 0.1 virtual s
                if poller.health("victim").state is HealthState.offline:
                    break
                await clock.sleep(0.1)
            offline = poller.health("victim")
            assert offline.state is HealthState.offline
            offline_at = (offline.since - clock.now()).total_seconds() + clock.monotonic()
            assert offline_at - killed_at <= 2 * 1.0
            await clock.sleep_until(8.2)
            assert poller.health("victim").state is HealthState.offline
            await victim.start()
            back_at = clock.monotonic()
            await clock.sleep_until(back_at + 2.0 + 1.0)  # max backoff + one period
            assert poller.health("victim").state is HealthState.online
            assert poller.health("other").state is HealthState.online
            latest = poller.latest("victim")
            assert latest is not None and latest.monotonic_s > back_at
            seen = [(c.device_id, c.health.state) for c in drain(changes)]
    assert seen[0][1] in (HealthState.degraded, HealthState.offline)
    assert HealthState.offline in [s for _, s in seen]
    assert seen[-1] == ("victim", HealthState.online)
    assert all(dev == "victim" for dev, _ in seen)
    failed = [e for e in logs if e["event"] == "device_failed"]
    recovered = [e for e in logs if e["event"] == "device_recovered"]
    assert [e["device_id"] for e in failed] == ["victim"]
    assert [e["device_id"] for e in recovered] == ["victim"]


async def test_a_device_answering_2s_late_does_not_delay_the_others(serve: ServeFn) -> None:
    clock = VirtualClock()
    meter = bundled("site-meter")  # one request per read
    servers = [await serve(meter, clock) for _ in range(3)]
    servers[0].delay_s = 2.0  # answers, but 2 s late
    drivers = [
        ModbusDriver(f"d{i}", meter, host="127.0.0.1", port=s.port, clock=clock, timeout_s=3.0)
        for i, s in enumerate(servers)
    ]
    poll_times: dict[str, list[float]] = {d.id: [] for d in drivers}
    async with Poller(drivers, clock=clock, period_s=1.0, stagger=False) as poller:
        for t in range(1, 11):
            await clock.sleep_until(t - 0.5)
            for d in drivers:
                r, seen = poller.latest(d.id), poll_times[d.id]
                if r is not None and (not seen or seen[-1] != r.monotonic_s):
                    seen.append(r.monotonic_s)
        stats = poller.stats()
        slow = poller.health("d0")
    # The punctual devices answered at every tick 0..9, on time to the (virtual) instant.
    assert poll_times["d1"] == poll_times["d2"] == [float(t) for t in range(10)]
    # The slow one answered 2 s after each poll it started; the ticks it overran were skipped.
    assert poll_times["d0"][:3] == [2.0, 5.0, 8.0]
    assert slow.state is HealthState.online
    assert stats.missed_ticks >= 3
    assert stats.lateness_max_s == 0.0


async def test_a_device_slower_than_its_timeout_is_degraded_then_offline(serve: ServeFn) -> None:
    clock = VirtualClock()
    battery = bundled("sunspec-battery")
    slow, ok = await serve(battery, clock), await serve(battery, clock)
    drivers = [
        ModbusDriver("slow", battery, host="127.0.0.1", port=slow.port, clock=clock, timeout_s=1.0),
        ModbusDriver("ok", battery, host="127.0.0.1", port=ok.port, clock=clock, timeout_s=1.0),
    ]
    async with Poller(drivers, clock=clock, period_s=1.0, stagger=False) as poller:
        changes = poller.subscribe()
        await clock.sleep_until(0.5)
        slow.delay_s = 2.0
        await clock.sleep_until(5.5)
        got = [(c.health.state, c.health.reason) for c in drain(changes) if c.device_id == "slow"]
        ok_reading = poller.latest("ok")
    states = [s for s, _ in got]
    assert states[:3] == [HealthState.online, HealthState.degraded, HealthState.offline]
    assert "no answer within 1 s" in got[1][1]
    assert ok_reading is not None and ok_reading.monotonic_s == 5.0


async def test_exception_answers_are_reported_with_the_exception_code(serve: ServeFn) -> None:
    clock = VirtualClock()
    meter = bundled("site-meter")
    s = await serve(meter, clock)
    d = ModbusDriver("meter", meter, host="127.0.0.1", port=s.port, clock=clock)
    async with Poller([d], clock=clock, period_s=1.0, offline_after=3) as poller:
        await clock.sleep_until(1.5)
        s.exception_code = 2
        await clock.sleep_until(2.5)
        h = poller.health("meter")
        assert (h.state, h.exception_code) == (HealthState.degraded, 2)
        assert "exception code 2" in h.reason
        s.exception_code = None
        await clock.sleep_until(3.5)
        h = poller.health("meter")
        assert (h.state, h.exception_code) == (HealthState.online, None)


async def test_an_implausible_value_is_bad_input_named_and_the_last_good_reading_stays(
    serve: ServeFn,
) -> None:
    clock = VirtualClock()
    battery = bundled("sunspec-battery")
    glitchy, other = await serve(battery, clock), await serve(battery, clock)
    glitchy.set("soc_pct", 55.0)
    drivers = [
        ModbusDriver(n, battery, host="127.0.0.1", port=s.port, clock=clock, timeout_s=0.5)
        for n, s in (("glitchy", glitchy), ("other", other))
    ]
    with capture_logs() as logs:
        async with Poller(drivers, clock=clock, period_s=1.0, max_backoff_s=2.0) as poller:
            await clock.sleep_until(2.5)
            good = poller.latest("glitchy")
            assert good is not None and good.values["soc_pct"] == 55.0
            # A register glitch: the u16 SoC register at its maximum (6553.5 % with SoC_SF -1).
            glitchy.set("soc_pct", 6553.5)
            await clock.sleep_until(5.5)
            h = poller.health("glitchy")
            assert h.state is HealthState.offline  # two bad readings in a row
            assert "soc_pct = 6553.5 outside [0, 100]" in h.reason
            latest = poller.latest("glitchy")
            assert latest is not None and latest.values["soc_pct"] == 55.0  # never replaced
            assert poller.health("other").state is HealthState.online
            glitchy.set("soc_pct", 56.0)
            await clock.sleep_until(9.5)  # the backoff (2 s) and one period
            assert poller.health("glitchy").state is HealthState.online
            latest = poller.latest("glitchy")
            assert latest is not None and latest.values["soc_pct"] == 56.0
    failed = [e for e in logs if e["event"] == "device_failed"]
    assert [e["device_id"] for e in failed] == ["glitchy"]
    assert "implausible reading: soc_pct" in failed[0]["reason"]
