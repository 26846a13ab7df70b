"""`VirtualClock.within` (what `devices.clock.timeout` runs on the virtual clock): the deadline
is a sleeper that cancels the waiting task, with no extra task per call."""

from __future__ import annotations

import asyncio

import pytest

from devices.clock import VirtualClock, timeout


async def test_answer_before_the_deadline_leaves_nothing_behind() -> None:
    clock = VirtualClock()

    async def answer() -> int:
        await clock.sleep(0.5)
        return 7

    assert await timeout(clock, 2.0, answer()) == 7
    assert clock.monotonic() == 0.5
    # The deadline at 2.0 no longer wakes anyone: the next sleeper decides the next leap,
    # and the task is not cancelled later by a stale deadline.
    await clock.sleep(3.0)
    assert clock.monotonic() == 3.5
    assert clock.leaps == 2


async def test_deadline_raises_timeout_error_at_virtual_time() -> None:
    clock = VirtualClock()
    cleaned = asyncio.Event()

    async def never() -> None:
        try:
            await clock.sleep(100)
        finally:
            cleaned.set()

    with pytest.raises(TimeoutError, match=r"within 1\.5 s"):
        await timeout(clock, 1.5, never())
    assert clock.monotonic() == 1.5
    assert cleaned.is_set()  # the awaited work was cancelled, not left running
    # The task is usable afterwards: its cancellation was taken back.
    await clock.sleep(1)
    assert clock.monotonic() == 2.5


async def test_outer_cancellation_is_not_turned_into_a_timeout() -> None:
    clock = VirtualClock()

    async def waiter() -> None:
        await timeout(clock, 10.0, clock.sleep(50))

    task = asyncio.create_task(waiter())
    await clock.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await clock.sleep(20)  # the dropped deadline at 10 s cancels nobody
    assert clock.monotonic() == 21


async def test_many_concurrent_deadlines_are_deterministic() -> None:
    async def run() -> list[tuple[int, float, str]]:
        clock = VirtualClock()
        out: list[tuple[int, float, str]] = []

        async def one(i: int) -> None:
            for k in range(5):
                try:
                    await timeout(clock, 1.0 + (i % 3) * 0.5, clock.sleep(0.4 * (i + k)))
                    out.append((i, clock.monotonic(), "ok"))
                except TimeoutError:
                    out.append((i, clock.monotonic(), "timeout"))

        await asyncio.gather(*(one(i) for i in range(8)))
        return out

    first = await run()
    assert first == await run()
    assert {r for _, _, r in first} == {"ok", "timeout"}
