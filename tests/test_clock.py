"""The virtual clock: order, determinism, leaps only when the loop is quiet."""

from __future__ import annotations

import asyncio
import time

from structlog.testing import capture_logs

from devices.clock import VirtualClock, WallClock, timeout


async def test_sleepers_wake_in_time_order_then_sleep_order() -> None:
    clock = VirtualClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, s: float) -> None:
        await clock.sleep(s)
        woke.append((name, clock.monotonic()))

    await asyncio.gather(sleeper("c", 3), sleeper("a", 1), sleeper("b", 1), sleeper("d", 2))
    assert woke == [("a", 1), ("b", 1), ("d", 2), ("c", 3)]


async def test_a_simulated_day_takes_little_wall_time() -> None:
    clock = VirtualClock()
    ticks = 0

    async def loop(period: float) -> None:
        nonlocal ticks
        t = 0.0
        while t < 86_400:
            t += period
            await clock.sleep_until(t)
            ticks += 1

    await asyncio.gather(loop(5), loop(60), loop(900))
    assert clock.monotonic() == 86_400
    assert ticks == 86_400 // 5 + 86_400 // 60 + 86_400 // 900


async def test_time_stands_still_while_a_task_computes_or_a_hold_is_open() -> None:
    clock = VirtualClock()
    seen: list[float] = []

    async def busy() -> None:
        async with clock.hold():
            for _ in range(20):
                await asyncio.sleep(0)  # work in flight across many loop turns
                seen.append(clock.monotonic())

    async def sleeper() -> None:
        await clock.sleep(10)

    await asyncio.gather(busy(), sleeper())
    assert seen == [0.0] * 20
    assert clock.monotonic() == 10


async def test_loopback_message_arrives_before_time_moves() -> None:
    """A reply over a real socket in this process lands at the instant it was sent."""
    clock = VirtualClock()
    received_at: list[float] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readline()
        writer.write(data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def client() -> None:
        await clock.sleep(5)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        await reader.readline()
        received_at.append(clock.monotonic())
        writer.close()

    async def other() -> None:
        await clock.sleep(6)

    await asyncio.gather(client(), other())
    server.close()
    assert received_at == [5.0]


async def test_timeout_elapses_in_clock_time() -> None:
    clock = VirtualClock()

    async def slow() -> str:
        await clock.sleep(2)
        return "late"

    try:
        await timeout(clock, 1.0, slow())
        raise AssertionError("expected a timeout")
    except TimeoutError:
        pass
    assert clock.monotonic() == 1.0
    assert await timeout(clock, 5.0, slow()) == "late"
    assert clock.monotonic() == 3.0


async def test_runs_are_deterministic() -> None:
    async def run() -> list[tuple[int, float]]:
        clock = VirtualClock()
        trace: list[tuple[int, float]] = []

        async def worker(i: int) -> None:
            for k in range(50):
                await clock.sleep((i * 7 + k * 3) % 5 + 0.5)
                trace.append((i, clock.monotonic()))

        await asyncio.gather(*(worker(i) for i in range(8)))
        return trace

    assert await run() == await run()


async def test_wall_clock_is_aware_and_monotonic() -> None:
    clock = WallClock()
    assert clock.now().tzinfo is not None
    a = clock.monotonic()
    await clock.sleep(0.01)
    assert clock.monotonic() > a


async def test_expected_message_holds_time_until_it_arrives() -> None:
    clock = VirtualClock()
    got: list[float] = []
    inbox: asyncio.Queue[str] = asyncio.Queue()

    async def outside_world() -> None:
        # Stands for a broker in another process: wall-time latency, invisible to the loop.
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: __import__("time").sleep(0.05)
        )
        await inbox.put("event")

    async def receiver() -> None:
        await inbox.get()
        clock.arrived("event")
        got.append(clock.monotonic())

    async def ticker() -> None:
        for _ in range(10):
            await clock.sleep(1)

    clock.expect("event")
    await asyncio.gather(outside_world(), receiver(), ticker())
    assert got == [0.0]


def _outside_world_after(wall_s: float, inbox: asyncio.Queue[str]) -> asyncio.Future[None]:
    """A broker in another process that answers after `wall_s` of wall time."""

    async def answer() -> None:
        await asyncio.get_running_loop().run_in_executor(None, time.sleep, wall_s)
        await inbox.put("event")

    return asyncio.ensure_future(answer())


async def test_a_message_slower_than_a_second_of_wall_time_still_holds_time() -> None:
    """A loaded machine makes a message late in wall time, never in simulated time: the
    clock waits for it (it used to give up after 1 s and let time move on)."""
    clock = VirtualClock()
    inbox: asyncio.Queue[str] = asyncio.Queue()
    got: list[float] = []

    async def receiver() -> None:
        await inbox.get()
        clock.arrived("event")
        got.append(clock.monotonic())

    async def ticker() -> None:
        for _ in range(10):
            await clock.sleep(1)

    clock.expect("event")
    await asyncio.gather(_outside_world_after(1.5, inbox), receiver(), ticker())
    assert got == [0.0]
    assert clock.hold_timeouts == 0 and clock.lost == []


async def test_a_loop_blocked_past_the_guard_by_computation_loses_nothing_that_arrives() -> None:
    """A long computation on the loop (a solve) while a hold is open: the hold ends once the
    loop runs again, so nothing is taken for lost, even past `max_hold_wall_s`."""
    clock = VirtualClock(max_hold_wall_s=1.0)
    seen: list[float] = []

    async def solve_then_answer() -> None:
        async with clock.hold():
            # Wait for the outside world first, so that the clock is already waiting.
            await asyncio.get_running_loop().run_in_executor(None, time.sleep, 0.05)
            time.sleep(1.5)  # noqa: ASYNC251 (the point: a solve blocks the loop, no progress)
            for _ in range(3):  # the answer takes a few loop turns
                await asyncio.sleep(0)
            seen.append(clock.monotonic())

    await asyncio.gather(solve_then_answer(), clock.sleep(5))
    assert seen == [0.0] and clock.hold_timeouts == 0


async def test_a_lost_message_is_dropped_after_the_guard_and_named_in_the_log() -> None:
    clock = VirtualClock(max_hold_wall_s=0.2)
    clock.expect("site/meter/telemetry")
    t0 = time.monotonic()
    with capture_logs() as logs:
        await clock.sleep(60)
    assert clock.monotonic() == 60
    assert 0.2 <= time.monotonic() - t0 < 10
    assert clock.hold_timeouts == 1 and clock.lost == ["site/meter/telemetry"]
    lost = [e for e in logs if e["event"] == "clock_hold_lost"]
    assert lost and lost[0]["log_level"] == "error"
    assert lost[0]["keys"] == ["site/meter/telemetry"]


async def test_a_hold_dropped_as_lost_does_not_end_a_later_one() -> None:
    """After the guard dropped a stuck hold, its late end must not count against a hold
    opened since (time would move while that one is still open)."""
    clock = VirtualClock(max_hold_wall_s=0.5)
    stuck, later = clock.hold(), clock.hold()
    seen: list[float] = []
    await stuck.__aenter__()
    await clock.sleep(1)  # the guard drops `stuck`, time moves
    assert clock.hold_timeouts == 1

    async def held() -> None:
        async with later:
            await stuck.__aexit__(None, None, None)  # the lost one ends at last
            # `later` waits for the outside world: time must not move meanwhile.
            await asyncio.get_running_loop().run_in_executor(None, time.sleep, 0.05)
            seen.append(clock.monotonic())

    await asyncio.gather(held(), clock.sleep(10))
    assert seen == [1.0]
    assert clock.hold_timeouts == 1


async def test_released_expectations_let_time_move_at_once() -> None:
    """A receiver whose connection dropped releases what it expected on its topics."""
    clock = VirtualClock()
    clock.expect("site/events:abc")
    clock.expect("site/meter/telemetry")
    clock.expect("site/events2:abc")  # another topic: still expected
    clock.arrived("site/events2:abc")

    async def drop_later() -> None:
        await asyncio.sleep(0.05)
        clock.release(["site/events", "site/meter/telemetry"])

    t0 = time.monotonic()
    await asyncio.gather(drop_later(), clock.sleep(30))
    assert clock.monotonic() == 30
    assert time.monotonic() - t0 < 5  # not the 30-s guard
    assert clock.hold_timeouts == 0
