"""A small building for end-to-end tests: 40 kW of base load, an 8 kW sheddable fan group and
a 100 kW / 300 kWh battery that alone could carry the site far past zero import, so the
closed loop's limits show; behind the site meter, over Modbus TCP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.replay.helpers import write_scenario
from vpp.replay.scenario import Scenario, load_scenario

SMALL_SITE: dict[str, Any] = {
    "site_id": "small-1",
    "name": "Small office",
    "timezone": "Asia/Shanghai",
    "grid": {"extensions": True},
    "periods": {"poll_s": 5, "telemetry_s": 5, "plan_s": 900, "control_s": 5},
    "store": {"telemetry_resolution_s": 60},
    "limits": {"import_kw": 200, "export_kw": 0, "recovery_ramp_kw_per_min": 40},
    "sim": {
        "step_s": 5,
        "seed": 3,
        "base_load": {"peak_kw": 40, "noise_kw": 0.5},
        "environment": {"outdoor_min_c": 27, "outdoor_max_c": 33},
    },
    "devices": [
        {"id": "meter", "type": "meter", "profile": "site-meter", "port": 0, "sim": {}},
        {
            "id": "bat1",
            "type": "battery",
            "profile": "sunspec-battery",
            "port": 0,
            "limits": {"power_setpoint_kw": [-100, 100]},
            "soc_reserve_pct": 10,
            "sim": {
                "default_watchdog_s": 180,
                "capacity_kwh": 300,
                "max_charge_kw": 100,
                "max_discharge_kw": 100,
                "initial_soc_pct": 90,
                "soc_min_pct": 5,
                "soc_max_pct": 95,
                "soc_reserve_pct": 10,
            },
        },
        {
            "id": "fans",
            "type": "curtailable_load",
            "profile": "curtailable-load",
            "port": 0,
            "sim": {"default_watchdog_s": 180, "power_kw": 8},
        },
    ],
}


def small_scenario(
    tmp: Path, signal: str, value: float, faults: list[dict[str, Any]] | None = None
) -> Scenario:
    """12:00-13:00 local on the summer day; one event 12:15-12:45 (two 15-min intervals),
    sent at 12:10."""
    (tmp / "site.yaml").write_text(yaml.safe_dump(SMALL_SITE, sort_keys=False))
    data = {
        "site": str(tmp / "site.yaml"),
        "start": "2026-07-15T12:00:00+08:00",
        "duration": "PT1H",
        "seed": 5,
        "history_days": 2,
        "events": [
            {
                "event_id": "zero-1",
                "send_at": "PT10M",
                "signal": signal,
                "start": "PT15M",
                "duration": "PT30M",
                "interval": "PT15M",
                "value": value,
            }
        ],
        "faults": faults or [],
    }
    return load_scenario(write_scenario(tmp, data, "export.yaml"))
