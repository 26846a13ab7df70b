"""Plausibility of device readings: a value no such device can report is bad input.

A register that glitches (a u16 read as 65535, an uninitialised f32 NaN, a wrong scale
factor) must not reach control: a battery reporting 6553.5 % SoC would look like megawatt-
hours of flexibility. The poller treats an implausible reading like a failed read: the last
good reading stays, the device is degraded (then offline) with a reason naming the point and
the value, and the agent carries on.

Beyond the ranges any device of a kind can report, each device may have its own (`bounds`,
from its rating and direction: `power_bounds`): an 11 kW one-way charger reading -500 kW is a
glitch, a 20 kW two-way (V2G) charger reading -15 kW is not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

# Canonical point name → the range any real device of its kind reports (engineering units).
RANGES: Mapping[str, tuple[float, float]] = {
    "soc_pct": (0.0, 100.0),
    "soc_reserve_pct": (0.0, 100.0),
    "zone_temp_c": (-40.0, 80.0),
    "outdoor_temp_c": (-60.0, 70.0),
    "setpoint_c": (-10.0, 50.0),
    "session_energy_kwh": (0.0, 1000.0),
    "capacity_kwh": (0.0, 100_000.0),
}
# Any power of one building's device or meter beyond this (kW, either sign) is a glitch.
POWER_LIMIT_KW = 100_000.0
# What a device may read beyond its rating (meter error, a short overshoot), and against its
# direction (standby draw, sign noise): this share of the rating plus a fixed kW.
RATING_SLACK_FRAC = 0.1
RATING_SLACK_KW = 1.0

Bounds = Mapping[str, tuple[float, float]]
"""Per canonical point, the range one device's readings must stay in."""


def power_bounds(
    rating_kw: float | None, *, consumes: bool, produces: bool
) -> tuple[float, float] | None:
    """The power (kW, consumption positive) a device of `rating_kw` can read in the directions
    it has; None when neither rating nor direction restricts it."""
    if consumes and produces and rating_kw is None:
        return None
    slack = RATING_SLACK_KW + RATING_SLACK_FRAC * (rating_kw or 0.0)
    full = math.inf if rating_kw is None else rating_kw + slack
    return (-full if produces else -slack, full if consumes else slack)


def implausible(values: Mapping[str, float], bounds: Bounds | None = None) -> str | None:
    """Why a reading cannot be used (the first bad point and value), or None when it can;
    `bounds` are the device's own (its rating and direction)."""
    for name, value in values.items():
        if not math.isfinite(value):
            return f"implausible reading: {name} = {value} is not a finite number"
        lo, hi = RANGES.get(name, (-math.inf, math.inf))
        if name.endswith("_kw"):
            lo, hi = max(lo, -POWER_LIMIT_KW), min(hi, POWER_LIMIT_KW)
        own = bounds.get(name) if bounds else None
        if own is not None and not own[0] <= value <= own[1]:
            return (
                f"implausible reading: {name} = {value:g} outside [{own[0]:g}, {own[1]:g}]"
                " (the device's rating and direction)"
            )
        if not lo <= value <= hi:
            return f"implausible reading: {name} = {value:g} outside [{lo:g}, {hi:g}]"
    return None
