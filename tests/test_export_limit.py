"""The site never exports past `limits.export_kw` under a closed loop (issue 13, point 6): a
small building whose battery alone could carry it past zero, replayed through the real agent
with its simulators over Modbus TCP on the virtual clock. A 0 kW import cap, and a curtailment
larger than the building's whole load, must each bring the import down to zero, not below.

Every 5-s meter sample is checked: the store keeps each minute's minimum.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Broker
from tests.replay.helpers import write_scenario
from vpp.replay.runner import STORE, replay
from vpp.replay.scenario import load_scenario

# One control cycle's lag: the meter moves with the base load's noise (0.5 kW here) and the
# load steps between two cycles; the loop corrects it at the next one.
LAG_TOLERANCE_KW = 2.0

SMALL_SITE: dict[str, Any] = {
    "site_id": "small-1",
    "name": "Small office",
    "timezone": "Asia/Shanghai",
    "broker": {"host": "127.0.0.1", "port": 1883, "client_id": "vpp-small-1", "prefix": "vpp"},
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


def _scenario(tmp: Path, signal: str, value: float) -> Any:
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
    }
    return load_scenario(write_scenario(tmp, data, "export.yaml"))


def _meter_minima(store: Path, a: float, b: float) -> list[tuple[float, float]]:
    with sqlite3.connect(store) as db:
        return db.execute(
            "SELECT ts, min FROM telemetry WHERE device_id='meter' AND point='import_power_kw'"
            " AND ts>=? AND ts<? ORDER BY ts",
            (a, b),
        ).fetchall()


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("signal", "value"),
    [("import_cap_kw", 0.0), ("curtail_kw", 60.0)],
    ids=["zero-import-cap", "curtailment-above-the-load"],
)
async def test_closed_loop_never_exports_past_the_limit(
    fresh_mosquitto: Broker, tmp_path: Path, signal: str, value: float
) -> None:
    sc = _scenario(tmp_path, signal, value)
    out = tmp_path / "out"
    await replay(
        sc, out, strategy="optimiser", broker_url=fresh_mosquitto.url, counterfactual=False
    )
    ev = sc.final_events()[0]
    export_kw = sc.site.config.limits.export_kw
    rows = _meter_minima(out / STORE, ev.start.timestamp(), ev.end.timestamp())
    assert len(rows) >= 28, "the meter was read through the event"
    low = min(rows, key=lambda r: r[1])
    assert low[1] >= -export_kw - LAG_TOLERANCE_KW, (low, rows)
    # The loop did bring the import down to the limit: the battery was needed.
    assert max(kw for _, kw in rows[2:]) <= 5.0, rows
