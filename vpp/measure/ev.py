"""Energy a car received, from a charger's energy counter over the car's session.

Chargers count energy in different ways: a session counter that resets when a car plugs in
(or when the next one starts charging, or at unplug), or a counter that keeps counting across
cars. Either way a car is credited only the increases of the counter while its session lasts,
from the counter's value before it plugged in; a drop of the counter is a reset, after which
it counts from zero again. So two cars on one charger in a day are each credited their own
energy, whatever the counter does between them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

RESET_TOLERANCE_KWH = 1e-3
"""A counter lower than before by more than this (the registers' 1 Wh) has been reset."""


def counter_increase_kwh(values: Iterable[float]) -> float:
    """Sum of the increases along a sequence of counter readings (kWh); after a drop
    (a reset) the reading itself counts, as energy since the reset."""
    total = 0.0
    prev: float | None = None
    for v in values:
        if prev is not None:
            total += v - prev if v >= prev - RESET_TOLERANCE_KWH else v
        prev = v
    return max(0.0, total)


def session_energy_kwh(before_kwh: float | None, windows: Sequence[tuple[float, float]]) -> float:
    """Energy a car received (kWh) from the counter's telemetry windows of its session.

    `before_kwh`: the counter before the car plugged in (the last window that ended by its
    arrival; `None` when none was stored: counted from the first window's lowest value).
    `windows`: (min, max) of the counter in each window from the one containing the arrival
    to the end of the session, in time order. Within a session the counter only rises, so a
    window's min is its value at the window's start (just after a reset in the window that
    holds one) and the last window's max its final value.
    """
    if not windows:
        return 0.0
    seq = [] if before_kwh is None else [before_kwh]
    seq += [lo for lo, _ in windows]
    seq.append(windows[-1][1])
    return counter_increase_kwh(seq)
