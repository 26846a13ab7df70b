"""Prices and grid carbon intensity of a scenario: a constant, 24 hourly values, a
time-of-use table, or a series of `[aware time, value]` pairs, evaluated in the scenario's
local time.

Tariffs are steps, not curves: hourly value `k` holds from local `k:00` to `k+1:00`, a
time-of-use period from its `start` (inclusive) to its `end` (exclusive, `00:00` = midnight),
a series value from its time until the next one (the first value also before it).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime, time, tzinfo
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
)

from devices.profile import format_validation_error


class TouPeriod(BaseModel):
    """One time-of-use period: `per_kwh` from local `start` to `end` (wraps past midnight
    when `end` <= `start`, e.g. 22:00–06:00)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: time
    end: time
    per_kwh: float = Field(allow_inf_nan=False)
    label: str = ""

    def covers(self, minute: int) -> bool:
        """True when minute-of-day `minute` (0..1439) is in the period."""
        a = self.start.hour * 60 + self.start.minute
        b = self.end.hour * 60 + self.end.minute
        return a <= minute < b if a < b else (minute >= a or minute < b)


class TouTable(BaseModel):
    """A time-of-use table: periods that cover every minute of the day exactly once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tou: Annotated[list[TouPeriod], Field(min_length=1)]

    @field_validator("tou")
    @classmethod
    def _cover(cls, tou: list[TouPeriod]) -> list[TouPeriod]:
        for minute in range(24 * 60):
            n = sum(p.covers(minute) for p in tou)
            if n != 1:
                what = "not covered by any period" if n == 0 else f"covered by {n} periods"
                raise ValueError(f"{minute // 60:02d}:{minute % 60:02d} local is {what}")
        return tou


class SeriesTariff(BaseModel):
    """Values from given times on: `points` = [[aware time, value], ...], times increasing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    points: Annotated[
        list[tuple[AwareDatetime, Annotated[float, Field(allow_inf_nan=False)]]],
        Field(min_length=1),
    ]

    @field_validator("points")
    @classmethod
    def _increasing(cls, v: list[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
        for i in range(1, len(v)):
            if v[i][0] <= v[i - 1][0]:
                raise ValueError(f"[{i}]: time is not after the previous one")
        return v

    def at(self, t: datetime) -> float:
        """The value holding at `t`."""
        times = [p[0].timestamp() for p in self.points]
        i = bisect_right(times, t.timestamp())
        return self.points[max(i - 1, 0)][1]


def _tariff(value: Any) -> float | list[float] | TouTable | SeriesTariff:
    """A constant, 24 hourly values, or a `{tou: [...]}` table; one clear error otherwise."""
    if isinstance(value, TouTable | SeriesTariff):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a number, 24 hourly numbers or {tou: [...]}, got a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return float(value)
    if isinstance(value, list) and value and isinstance(value[0], list | tuple):
        try:
            return SeriesTariff.model_validate({"points": value})
        except ValidationError as e:
            raise ValueError(format_validation_error("series", e)) from None
    if isinstance(value, list):
        if len(value) != 24:
            raise ValueError(f"hourly values: expected 24, got {len(value)}")
        out = []
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"hourly values[{i}]: not a finite number: {v!r}")
            out.append(float(v))
        return out
    if isinstance(value, dict):
        try:
            return TouTable.model_validate(value)
        except ValidationError as e:
            raise ValueError(format_validation_error("time-of-use table", e)) from None
    raise ValueError(
        f"expected a number, 24 hourly numbers, {{tou: [...]}} or [[time, value], ...], "
        f"got {value!r}"
    )


Tariff = Annotated[float | list[float] | TouTable | SeriesTariff, PlainValidator(_tariff)]
"""A price (per kWh) or intensity (kg CO2 per kWh): constant, 24 hourly values, a TOU table or
a series of [time, value] pairs."""

# A Shanghai-like commercial summer tariff (CNY/kWh): peak 08–11, 13–15, 18–21; valley 22–06.
SHANGHAI_TOU = TouTable(
    tou=[
        TouPeriod(start=time(22), end=time(6), per_kwh=0.31, label="valley"),
        TouPeriod(start=time(6), end=time(8), per_kwh=0.76, label="flat"),
        TouPeriod(start=time(8), end=time(11), per_kwh=1.21, label="peak"),
        TouPeriod(start=time(11), end=time(13), per_kwh=0.76, label="flat"),
        TouPeriod(start=time(13), end=time(15), per_kwh=1.21, label="peak"),
        TouPeriod(start=time(15), end=time(18), per_kwh=0.76, label="flat"),
        TouPeriod(start=time(18), end=time(21), per_kwh=1.21, label="peak"),
        TouPeriod(start=time(21), end=time(22), per_kwh=0.76, label="flat"),
    ]
)
DEFAULT_CARBON_KG_PER_KWH = 0.58
"""Grid carbon intensity when the scenario gives none (kg CO2 per kWh imported)."""


def value_at(tariff: Tariff, t: datetime, tz: tzinfo) -> float:
    """The tariff's value at aware time `t` (local time in `tz`)."""
    if isinstance(tariff, int | float):
        return float(tariff)
    if isinstance(tariff, SeriesTariff):
        return tariff.at(t)
    local = t.astimezone(tz)
    if isinstance(tariff, TouTable):
        minute = local.hour * 60 + local.minute
        for p in tariff.tou:
            if p.covers(minute):
                return p.per_kwh
        raise AssertionError("validated TOU table does not cover a minute")  # pragma: no cover
    return float(tariff[local.hour])


def values_on(tariff: Tariff, times: Sequence[datetime], tz: tzinfo) -> list[float]:
    """The tariff at each time of `times` (e.g. the start of each simulation step)."""
    return [value_at(tariff, t, tz) for t in times]
