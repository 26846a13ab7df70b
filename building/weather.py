"""Weather shared by thermal zones and PV: outdoor temperature (degC) and irradiance (W/m2)
as functions of an aware datetime, from series or a built-in daily summer shape."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import cast
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from building.params import SeriesPoint, Shape


class EnvironmentParams(BaseModel):
    """Weather of a simulated site. Without series, a summer day in `timezone`: outdoor
    temperature a cosine between `outdoor_min_c` (03:00) and `outdoor_max_c` (15:00), and
    irradiance a half sine from `sunrise_h` to `sunset_h` (local hours) peaking at
    `peak_irradiance_w_m2`. A series (list of [aware datetime, value]) replaces its shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "Asia/Shanghai"
    outdoor_min_c: float = 27.0
    outdoor_max_c: float = 35.0
    sunrise_h: float = Field(default=5.0, ge=0, le=24)
    sunset_h: float = Field(default=19.0, ge=0, le=24)
    peak_irradiance_w_m2: float = Field(default=900.0, ge=0)
    outdoor_temp_series: list[tuple[AwareDatetime, float]] | None = None
    irradiance_series: list[tuple[AwareDatetime, float]] | None = None

    @model_validator(mode="after")
    def _check(self) -> EnvironmentParams:
        try:
            ZoneInfo(self.timezone)
        except (KeyError, ValueError) as e:
            raise ValueError(f"unknown timezone {self.timezone!r}") from e
        if self.sunrise_h >= self.sunset_h:
            raise ValueError("sunrise_h must be before sunset_h")
        if self.outdoor_min_c > self.outdoor_max_c:
            raise ValueError("outdoor_min_c is above outdoor_max_c")
        return self


def interpolate(series: Sequence[SeriesPoint], t: datetime) -> float:
    """Linear interpolation in a time series, held constant before the first and after the
    last point."""
    times = [p[0].timestamp() for p in series]
    x = t.timestamp()
    i = bisect_right(times, x)
    if i == 0:
        return series[0][1]
    if i >= len(series):
        return series[-1][1]
    t0, t1 = times[i - 1], times[i]
    v0, v1 = series[i - 1][1], series[i][1]
    return v0 + (v1 - v0) * (x - t0) / (t1 - t0) if t1 > t0 else v1


class Environment:
    """Outdoor temperature and irradiance at any aware time; also evaluates `Shape`s in the
    site's local time."""

    def __init__(self, params: EnvironmentParams | None = None) -> None:
        self.params = params or EnvironmentParams()
        self.tz: tzinfo = ZoneInfo(self.params.timezone)
        self._temp = sorted(self.params.outdoor_temp_series or [], key=lambda p: p[0])
        self._irr = sorted(self.params.irradiance_series or [], key=lambda p: p[0])
        # The last time asked and its local hour: every device of a simulation step asks at
        # the same instant.
        self._hour_at: tuple[datetime, float] | None = None

    def local_hour(self, t: datetime) -> float:
        """Hours since local midnight (0..24)."""
        last = self._hour_at
        if last is not None and last[0] == t:
            return last[1]
        lt = t.astimezone(self.tz)
        h = lt.hour + lt.minute / 60 + (lt.second + lt.microsecond / 1e6) / 3600
        self._hour_at = (t, h)
        return h

    def outdoor_temp_c(self, t: datetime) -> float:
        """Outdoor dry-bulb temperature, degC."""
        if self._temp:
            return interpolate(self._temp, t)
        p = self.params
        mean, amp = (p.outdoor_max_c + p.outdoor_min_c) / 2, (p.outdoor_max_c - p.outdoor_min_c) / 2
        return mean + amp * math.cos(2 * math.pi * (self.local_hour(t) - 15.0) / 24)

    def irradiance_w_m2(self, t: datetime) -> float:
        """Global horizontal irradiance, W/m2 (>= 0)."""
        if self._irr:
            return max(0.0, interpolate(self._irr, t))
        p = self.params
        h = self.local_hour(t)
        if not p.sunrise_h < h < p.sunset_h:
            return 0.0
        return p.peak_irradiance_w_m2 * math.sin(
            math.pi * (h - p.sunrise_h) / (p.sunset_h - p.sunrise_h)
        )

    def shape(self, shape: Shape, t: datetime) -> float:
        """Value of a `Shape` at `t`: constant, N values over the local day, or a series."""
        if isinstance(shape, float | int):
            return float(shape)
        if not shape:
            return 0.0
        first = shape[0]
        if isinstance(first, tuple):
            return interpolate(cast(list[SeriesPoint], shape), t)
        values = cast(list[float], shape)
        n = len(values)
        pos = self.local_hour(t) / 24 * n
        i = int(pos) % n
        frac = pos - int(pos)
        v0 = float(values[i])
        return v0 + (float(values[(i + 1) % n]) - v0) * frac
