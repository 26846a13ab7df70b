"""Which readings are bad input, and how the reason names the point."""

from __future__ import annotations

import math

import pytest

from devices.plausible import implausible


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"soc_pct": 101.0}, "soc_pct = 101 outside [0, 100]"),
        ({"power_kw": math.nan}, "power_kw = nan is not a finite number"),
        ({"import_power_kw": math.inf}, "import_power_kw = inf is not a finite number"),
        ({"power_kw": -2.1e6}, "power_kw = -2.1e+06 outside [-100000, 100000]"),
        ({"zone_temp_c": 3276.7}, "zone_temp_c = 3276.7 outside [-40, 80]"),
        ({"power_kw": 10.0, "session_energy_kwh": -1.0}, "session_energy_kwh = -1 outside"),
    ],
)
def test_implausible_values_are_named(values: dict[str, float], reason: str) -> None:
    got = implausible(values)
    assert got is not None and reason in got


def test_ordinary_readings_pass() -> None:
    assert implausible({"soc_pct": 0.0, "power_kw": -250.0, "zone_temp_c": 24.5}) is None
    assert implausible({"sunspec_marker": 1400204883.0, "state": 4.0}) is None
