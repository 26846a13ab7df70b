"""Weather series from a CSV file: `time,outdoor_temp_c,irradiance_w_m2`, one row per
sample (any spacing; the simulator interpolates linearly). `time` is RFC 3339 with an
offset, or a naive local time in the scenario's zone (`2026-07-15 14:00`)."""

from __future__ import annotations

import csv
import math
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

COLUMNS = ("time", "outdoor_temp_c", "irradiance_w_m2")

Series = list[tuple[datetime, float]]


def read_weather_csv(path: Path, tz: ZoneInfo) -> tuple[Series, Series]:
    """(outdoor temperature degC, irradiance W/m2) series; raises ValueError naming the file,
    line and column of the first problem."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"{path}: cannot read: {e.strerror}") from e
    rows = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS if c not in (rows.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}: line 1: missing column(s) {', '.join(missing)}")
    temp: Series = []
    irr: Series = []
    for line, row in enumerate(rows, start=2):
        try:
            t = datetime.fromisoformat(row["time"].strip())
        except ValueError:
            raise ValueError(
                f"{path}: line {line}: time: not a date-time: {row['time']!r}"
            ) from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=tz)
        if temp and t <= temp[-1][0]:
            raise ValueError(f"{path}: line {line}: time: not after the previous row")
        values = []
        for col in COLUMNS[1:]:
            try:
                v = float(row[col])
            except (TypeError, ValueError):
                raise ValueError(
                    f"{path}: line {line}: {col}: not a number: {row[col]!r}"
                ) from None
            if not math.isfinite(v):
                raise ValueError(f"{path}: line {line}: {col}: not a finite number")
            values.append(v)
        if values[1] < 0:
            raise ValueError(f"{path}: line {line}: irradiance_w_m2: negative")
        temp.append((t, values[0]))
        irr.append((t, values[1]))
    if not temp:
        raise ValueError(f"{path}: no rows")
    return temp, irr
