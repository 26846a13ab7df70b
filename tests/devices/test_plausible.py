"""Which readings are bad input, and how the reason names the point."""

from __future__ import annotations

import math

import pytest

from devices.plausible import implausible, power_bounds


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


def test_a_devices_own_bounds_follow_its_rating_and_direction() -> None:
    one_way = power_bounds(11.0, consumes=True, produces=False)
    two_way = power_bounds(20.0, consumes=True, produces=True)
    assert one_way is not None and two_way is not None
    got = implausible({"power_kw": -500.0}, {"power_kw": one_way})
    assert got is not None and got.startswith("implausible reading: power_kw = -500 outside")
    assert implausible({"power_kw": 11.5}, {"power_kw": one_way}) is None
    assert implausible({"power_kw": -15.0}, {"power_kw": two_way}) is None
    assert implausible({"power_kw": -500.0}, {"power_kw": two_way}) is not None
    # PV only produces; a device of unknown rating that can go either way is not bounded.
    pv = power_bounds(100.0, consumes=False, produces=True)
    assert pv is not None and implausible({"power_kw": 50.0}, {"power_kw": pv}) is not None
    assert power_bounds(None, consumes=True, produces=True) is None
