"""Plausibility of device readings: a value no such device can report is bad input.

A register that glitches (a u16 read as 65535, an uninitialised f32 NaN, a wrong scale
factor) must not reach control: a battery reporting 6553.5 % SoC would look like megawatt-
hours of flexibility. The poller treats an implausible reading like a failed read: the last
good reading stays, the device is degraded (then offline) with a reason naming the point and
the value, and the agent carries on.
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


def implausible(values: Mapping[str, float]) -> str | None:
    """Why a reading cannot be used (the first bad point and value), or None when it can."""
    for name, value in values.items():
        if not math.isfinite(value):
            return f"implausible reading: {name} = {value} is not a finite number"
        lo, hi = RANGES.get(name, (-math.inf, math.inf))
        if name.endswith("_kw"):
            lo, hi = max(lo, -POWER_LIMIT_KW), min(hi, POWER_LIMIT_KW)
        if not lo <= value <= hi:
            return f"implausible reading: {name} = {value:g} outside [{lo:g}, {hi:g}]"
    return None
