"""Awaiting library calls without losing a cancellation.

On Python 3.11 `asyncio.wait_for` returns the inner result instead of raising
CancelledError when the task is cancelled in the same loop turn in which the awaited
future completes (CPython gh-86296, fixed in 3.12 by the rewrite of `wait_for`). aiomqtt
waits for every PUBACK, SUBACK and CONNACK through `wait_for`, so a task told to stop while
its publish is being acknowledged carries on as if nothing had happened, and whoever awaits
it (a TaskGroup, `stop()`) waits forever. `cancellable` turns such a lost cancellation back
into CancelledError.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def cancellable(aw: Awaitable[T]) -> T:
    """Await `aw`; raise CancelledError if the current task was cancelled meanwhile even
    when `aw` swallowed the cancellation and returned normally."""
    task = asyncio.current_task()
    before = task.cancelling() if task is not None else 0
    result = await aw
    if task is not None and task.cancelling() > before:
        raise asyncio.CancelledError
    return result
