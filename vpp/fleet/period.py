"""A periodic tick on the injected clock, on multiples of its period (so every emulated site
and the aggregator tick together)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import datetime

from devices.clock import Clock


async def every(clock: Clock, period_s: float) -> AsyncIterator[datetime]:
    """`clock.now()` at each multiple of `period_s` on the clock's monotonic time, from the
    next one on; a tick missed by a late loop is not made up (the next one comes on time)."""
    nxt = math.floor(clock.monotonic() / period_s) * period_s + period_s
    while True:
        await clock.sleep_until(nxt)
        yield clock.now()
        nxt = max(nxt + period_s, math.floor(clock.monotonic() / period_s) * period_s + period_s)
