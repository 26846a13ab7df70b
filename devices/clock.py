"""The one clock: every loop in control, driver and simulation code takes time from here.

`WallClock` runs live. `VirtualClock` runs replay and tests: time jumps to the next
wake-up only when the event loop is quiet (no ready callbacks, no I/O announced as in
flight), so a simulated day runs in seconds and every run is the same, however loaded the
machine: work announced as in flight is waited for until it is done, not for a wall-time
window.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar, runtime_checkable

import structlog

T = TypeVar("T")

log = structlog.get_logger("devices.clock")

LOST_AFTER_WALL_S = 30.0
"""The virtual clock's safety net: held work that made no progress for this long (wall
time) is taken for lost and dropped, with an error naming it."""


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

    def release(self, topics: Iterable[str]) -> None:
        """Messages expected on `topics` will not come (the receiver's connection dropped):
        forget the keys that are a topic or start with `topic:`."""
        ...


class _Hold:
    """Async context manager counting in-flight work on a clock."""

    def __init__(self, begin: Callable[[], int], end: Callable[[int], None]) -> None:
        self._begin, self._end = begin, end
        self._token = 0

    async def __aenter__(self) -> None:
        self._token = self._begin()

    async def __aexit__(self, *exc: object) -> None:
        self._end(self._token)


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
        return _Hold(lambda: 0, lambda token: None)

    def expect(self, key: str) -> None:
        pass

    def arrived(self, key: str) -> None:
        pass

    def release(self, topics: Iterable[str]) -> None:
        pass


class VirtualClock:
    """Simulated time that leaps from one wake-up to the next when the loop is quiet.

    Sleepers wake in (time, order of sleeping) order, so runs are deterministic. Time never
    moves while a callback is ready to run, a `hold()` is open or an `expect()`ed message
    has not arrived; loopback traffic between tasks of this process is drained by waiting
    for two quiet loop iterations in a row (the selector is polled between them).

    Held work is waited for as long as it makes progress, so a loaded machine makes a run
    slower, never different. Only work with no progress (no hold ended, no message arrived)
    for `max_hold_wall_s` of wall time is dropped, as lost (`hold_timeouts`, `lost`, and an
    error in the log naming it); a receiver whose connection drops `release()`s what it
    was expecting at once.
    """

    def __init__(
        self, start: datetime | None = None, *, max_hold_wall_s: float = LOST_AFTER_WALL_S
    ) -> None:
        start = start or datetime(2026, 7, 15, 0, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("VirtualClock start must be timezone-aware")
        self._start = start
        self._t = 0.0
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._holds = 0  # open hold() contexts of the current generation
        self._generation = 0  # bumped when held work is dropped: older holds no longer count
        self._expected: dict[str, int] = {}
        self._pending = 0  # open holds + expected messages
        self._progress_at = 0.0  # wall time of the last hold ended or message arrived
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
        self._more()

    def arrived(self, key: str) -> None:
        n = self._expected.get(key, 0)
        if n:
            if n == 1:
                del self._expected[key]
            else:
                self._expected[key] = n - 1
            self._less()

    def release(self, topics: Iterable[str]) -> None:
        names = tuple(topics)
        prefixes = tuple(f"{t}:" for t in names)
        gone = [k for k in self._expected if k in names or k.startswith(prefixes)]
        for key in gone:
            n = self._expected.pop(key)
            self._pending -= n
        if gone:
            log.debug("clock_expectations_released", keys=sorted(gone))
            self._progress_at = time.perf_counter()
            if not self._pending:
                self._quiet.set()

    def _begin(self) -> int:
        self._holds += 1
        self._more()
        return self._generation

    def _end(self, generation: int) -> None:
        if generation == self._generation:  # a hold dropped as lost is no longer counted
            self._holds -= 1
            self._less()

    def _more(self) -> None:
        if not self._pending:
            self._progress_at = time.perf_counter()
        self._pending += 1
        self._quiet.clear()

    def _less(self) -> None:
        self._pending -= 1
        self._progress_at = time.perf_counter()
        if not self._pending:
            self._quiet.set()

    def _drop_held(self) -> None:
        """Held work made no progress for `max_hold_wall_s`: take it for lost."""
        self.hold_timeouts += 1
        self.lost = sorted(self._expected)
        log.error(
            "clock_hold_lost",
            keys=self.lost,
            open_holds=self._holds,
            wall_s=self._max_hold_wall_s,
            simulated=self.now().isoformat(),
        )
        self._generation += 1
        self._holds = 0
        self._expected.clear()
        self._pending = 0
        self._quiet.set()

    async def _wait_held(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until no work is held, however long it takes while it makes progress.

        The guard ticks in wall time and counts only the ticks that saw no progress and came
        on time: a tick that comes late found the loop blocked (a solve), so nothing could
        have arrived meanwhile, and it does not count towards `max_hold_wall_s`.
        """
        t0 = time.perf_counter()
        tick = min(1.0, self._max_hold_wall_s / 4)
        idle = 0.0
        seen = self._progress_at
        due = t0 + tick
        guard: asyncio.TimerHandle | None = None

        def check() -> None:
            nonlocal guard, idle, seen, due
            if not self._pending:
                return
            now = time.perf_counter()
            if self._progress_at != seen:
                seen, idle = self._progress_at, 0.0
            elif now - due < tick:
                idle += tick
            if idle >= self._max_hold_wall_s:
                self._drop_held()
                return
            due = now + tick
            guard = loop.call_at(loop.time() + tick, check)

        guard = loop.call_at(loop.time() + tick, check)
        try:
            await self._quiet.wait()
        finally:
            guard.cancel()
        self.hold_wait_s += time.perf_counter() - t0
        self.hold_waits += 1

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
            if self._pending:
                await self._wait_held(loop)
                quiet_rounds = 0
                continue
            await asyncio.sleep(0)
            # asyncio keeps ready callbacks in BaseEventLoop._ready; with any of them pending
            # some task still has work to do at the current instant.
            ready = getattr(loop, "_ready", ())
            quiet_rounds = quiet_rounds + 1 if not ready and not self._pending else 0

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
