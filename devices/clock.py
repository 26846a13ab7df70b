"""The one clock: every loop in control, driver and simulation code takes time from here.

`WallClock` runs live. `VirtualClock` runs replay and tests: time jumps to the next
wake-up only when the event loop is quiet (no ready callbacks, no I/O announced as in
flight), so a simulated day runs in seconds and every run is the same.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


@runtime_checkable
class Clock(Protocol):
    """Time source injected into every loop."""

    def now(self) -> datetime:
        """Current time, timezone-aware (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a monotonic scale (for periods, timeouts and lateness)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...

    async def sleep_until(self, monotonic_s: float) -> None:
        """Wait until `monotonic()` reaches `monotonic_s` (returns at once if passed)."""
        ...

    def hold(self) -> _Hold:
        """Mark work in flight outside this process (a broker round trip): time stands still."""
        ...

    def expect(self, key: str) -> None:
        """Announce a message (by key) that a task of this process will receive: time stands
        still until `arrived(key)` is called (or the virtual clock's hold limit passes)."""
        ...

    def arrived(self, key: str) -> None:
        """The message announced by `expect(key)` was received (unknown keys are ignored)."""
        ...


class _Hold:
    """Async context manager counting in-flight work on a clock."""

    def __init__(self, begin: Callable[[], None], end: Callable[[], None]) -> None:
        self._begin, self._end = begin, end

    async def __aenter__(self) -> None:
        self._begin()

    async def __aexit__(self, *exc: object) -> None:
        self._end()


async def timeout(clock: Clock, seconds: float, aw: Awaitable[T]) -> T:
    """Await `aw`, raising TimeoutError after `seconds` of clock time.

    Uses the clock instead of asyncio.wait_for so that timeouts of simulated slow devices
    elapse in virtual time.
    """
    if isinstance(clock, VirtualClock):
        return await clock.within(seconds, aw)
    task = asyncio.ensure_future(aw)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        done, _ = await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        timer.cancel()
        raise
    if task in done:
        timer.cancel()
        return task.result()
    task.cancel()
    try:
        await task
    except BaseException:
        pass
    raise TimeoutError(f"no answer within {seconds:g} s")


class WallClock:
    """Real time: `now()` from the system, sleeps from asyncio."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, monotonic_s: float) -> None:
        await asyncio.sleep(max(0.0, monotonic_s - time.monotonic()))

    def hold(self) -> _Hold:
        return _Hold(lambda: None, lambda: None)

    def expect(self, key: str) -> None:
        pass

    def arrived(self, key: str) -> None:
        pass


class VirtualClock:
    """Simulated time that leaps from one wake-up to the next when the loop is quiet.

    Sleepers wake in (time, order of sleeping) order, so runs are deterministic. Time never
    moves while a callback is ready to run or while a `hold()` is open; loopback traffic
    between tasks of this process is drained by waiting for two quiet loop iterations in a
    row (the selector is polled between them).
    """

    def __init__(self, start: datetime | None = None, *, max_hold_wall_s: float = 1.0) -> None:
        start = start or datetime(2026, 7, 15, 0, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("VirtualClock start must be timezone-aware")
        self._start = start
        self._t = 0.0
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._holds = 0
        self._expected: dict[str, int] = {}
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._advancer: asyncio.Task[None] | None = None
        self._max_hold_wall_s = max_hold_wall_s
        self.leaps = 0
        self.hold_timeouts = 0
        self.hold_wait_s = 0.0  # wall seconds spent waiting for held work (diagnostics)
        self.hold_waits = 0
        self.lost: list[str] = []

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._t)

    def monotonic(self) -> float:
        return self._t

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._t + max(0.0, seconds))

    async def sleep_until(self, monotonic_s: float) -> None:
        if monotonic_s <= self._t:
            await asyncio.sleep(0)  # still a scheduling point, as a wall-clock sleep(0) is
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._heap, (monotonic_s, next(self._seq), fut))
        self._ensure_advancer(loop)
        await fut

    def hold(self) -> _Hold:
        return _Hold(self._begin, self._end)

    async def within(self, seconds: float, aw: Awaitable[T]) -> T:
        """Await `aw` in the calling task, raising TimeoutError once `seconds` of virtual
        time have passed (what `devices.clock.timeout` does on this clock).

        The deadline is a sleeper in the clock's queue that cancels the task when it wakes,
        as `asyncio.timeout` does on the loop's own time: no extra task per call, and an
        answer that comes first leaves the deadline behind as a cancelled sleeper.
        """
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("VirtualClock.within must run in a task")
        loop = asyncio.get_running_loop()
        deadline: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._heap, (self._t + max(0.0, seconds), next(self._seq), deadline))
        self._ensure_advancer(loop)
        state = {"fired": False, "over": False}

        def expire(fut: asyncio.Future[None]) -> None:
            if not fut.cancelled() and not state["over"]:
                state["fired"] = True
                task.cancel()

        deadline.add_done_callback(expire)
        try:
            return await aw
        except asyncio.CancelledError:
            if state["fired"] and task.uncancel() == 0:
                raise TimeoutError(f"no answer within {seconds:g} s") from None
            raise
        finally:
            state["over"] = True
            if not deadline.done():
                deadline.remove_done_callback(expire)
                deadline.cancel()

    def expect(self, key: str) -> None:
        self._expected[key] = self._expected.get(key, 0) + 1
        self._begin()

    def arrived(self, key: str) -> None:
        n = self._expected.get(key, 0)
        if n:
            if n == 1:
                del self._expected[key]
            else:
                self._expected[key] = n - 1
            self._end()

    def _begin(self) -> None:
        self._holds += 1
        self._quiet.clear()

    def _end(self) -> None:
        self._holds = max(0, self._holds - 1)
        if self._holds == 0:
            self._quiet.set()

    def _ensure_advancer(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._advancer is None or self._advancer.done():
            self._advancer = loop.create_task(self._advance(), name="virtual-clock")

    async def _settle(self) -> None:
        """Return once the loop has been quiet for two iterations in a row."""
        loop = asyncio.get_running_loop()
        quiet_rounds = 0
        while quiet_rounds < 2:
            self._drop_cancelled()
            if not self._heap:
                return  # nobody left to wake (only deadlines that were beaten)
            if self._holds:
                t0 = time.perf_counter()
                try:
                    await asyncio.wait_for(self._quiet.wait(), self._max_hold_wall_s)
                except TimeoutError:
                    # A message that never arrives (QoS 0 lost, broker gone) must not
                    # freeze simulated time forever.
                    self.hold_timeouts += 1
                    self.lost = sorted(self._expected)
                    self._holds = 0
                    self._expected.clear()
                    self._quiet.set()
                self.hold_wait_s += time.perf_counter() - t0
                self.hold_waits += 1
                quiet_rounds = 0
                continue
            await asyncio.sleep(0)
            # asyncio keeps ready callbacks in BaseEventLoop._ready; with any of them pending
            # some task still has work to do at the current instant.
            ready = getattr(loop, "_ready", ())
            quiet_rounds = quiet_rounds + 1 if not ready and not self._holds else 0

    def _drop_cancelled(self) -> None:
        """Drop the next sleepers if they were cancelled (timeouts beaten by an answer)."""
        heap = self._heap
        while heap and heap[0][2].done():
            heapq.heappop(heap)

    async def _advance(self) -> None:
        while self._heap:
            await self._settle()
            self._drop_cancelled()
            if not self._heap:
                break
            wake = self._heap[0][0]
            if wake > self._t:
                self._t = wake
                self.leaps += 1
            while self._heap and self._heap[0][0] <= self._t:
                _, _, fut = heapq.heappop(self._heap)
                if not fut.done():
                    fut.set_result(None)
