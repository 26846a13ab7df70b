"""Helpers of the replay tests: bundled scenario paths, scenario files in tmp, stores filled
minute by minute with known values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from vpp.store.store import Store

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "config" / "scenarios"
OFFICE = ROOT / "config" / "sites" / "office.yaml"
BUNDLED = ["office-summer-day", "office-intraday-cap", "office-week"]
MINUTE = timedelta(minutes=1)


def write_scenario(tmp: Path, data: dict[str, Any], name: str = "s.yaml") -> Path:
    """A scenario file in `tmp` using the example office unless `site` is given."""
    body = {"site": str(OFFICE), **data}
    path = tmp / name
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def fill(
    store: Store,
    device: str,
    point: str,
    start: datetime,
    minutes: int,
    value: Callable[[datetime], float],
) -> None:
    """One reading per minute (so each 60-s window mean is exactly `value(t)`)."""
    for k in range(minutes):
        t = start + k * MINUTE
        store.add_telemetry(t, device, {point: value(t)})
    store.flush()
