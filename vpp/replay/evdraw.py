"""Vehicle arrivals drawn from a seeded distribution: the same seed gives the same visits."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

Hours = Annotated[float, Field(ge=0, le=72)]


class EvRandom(BaseModel):
    """`count` vehicles a day (weekdays only by default) arriving at local hour
    N(`arrival_mean_h`, `arrival_sd_h`), staying `stay_h` hours (a number, or `[lo, hi]`
    drawn uniformly) and needing `energy_kwh` = `[lo, hi]` drawn uniformly (kWh). Each is
    put on the first charger of `chargers` (default: every EV charger of the site, in site
    order) that is free for its whole visit; a vehicle finding none is turned away. `seed`
    defaults to the scenario's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: Annotated[int, Field(ge=0, le=1000)]
    arrival_mean_h: Annotated[float, Field(ge=0, lt=24)]
    arrival_sd_h: Annotated[float, Field(ge=0, le=12)] = 0.5
    stay_h: Hours | tuple[Hours, Hours] = 9.0
    energy_kwh: tuple[Annotated[float, Field(ge=0, le=200)], Annotated[float, Field(ge=0, le=200)]]
    vehicle_max_kw: Annotated[float, Field(gt=0, le=350)] = 11.0
    seed: int | None = None
    chargers: list[str] | None = None
    weekdays_only: bool = True

    @model_validator(mode="after")
    def _ranges(self) -> EvRandom:
        if self.energy_kwh[0] > self.energy_kwh[1]:
            raise ValueError("energy_kwh: [lo, hi] with lo <= hi")
        if isinstance(self.stay_h, tuple):
            if self.stay_h[0] > self.stay_h[1]:
                raise ValueError("stay_h: [lo, hi] with lo <= hi")
            if self.stay_h[0] <= 0:
                raise ValueError("stay_h: must be positive")
        elif self.stay_h <= 0:
            raise ValueError("stay_h: must be positive")
        return self


Drawn = tuple[str, datetime, datetime, float, float]
"""(charger id, arrival, departure, energy needed kWh, vehicle max kW)."""


def draw_sessions(
    spec: EvRandom,
    chargers: list[str],
    start: datetime,
    duration: timedelta,
    tz: ZoneInfo,
    taken: dict[str, list[tuple[datetime, datetime]]] | None = None,
) -> list[Drawn]:
    """Visits arriving in `[start, start + duration)`, day by day in local time. `taken`:
    visits already on each charger (explicit ones), which drawn vehicles must not overlap.

    Draws run day by day from one `random.Random(seed)`, so a shorter run of the same
    scenario sees the same first days. Arrivals are rounded to the minute, energies to 0.1
    kWh, so the file of sessions reads cleanly.
    """
    rng = random.Random(spec.seed or 0)
    pool = spec.chargers if spec.chargers is not None else chargers
    busy = {c: list((taken or {}).get(c, [])) for c in pool}
    end = start.astimezone(UTC) + duration
    day = start.astimezone(tz).date()
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    out: list[Drawn] = []
    while day <= last:
        midnight = datetime.combine(day, time(0), tzinfo=tz)
        day_cars = []
        for _ in range(spec.count):  # always draw, so weekends do not shift later days
            h = min(max(rng.normalvariate(spec.arrival_mean_h, spec.arrival_sd_h), 0.0), 23.75)
            stay = spec.stay_h if not isinstance(spec.stay_h, tuple) else rng.uniform(*spec.stay_h)
            kwh = round(rng.uniform(*spec.energy_kwh), 1)
            arrival = midnight + timedelta(minutes=round(h * 60))
            departure = arrival + timedelta(minutes=max(1, round(stay * 60)))
            day_cars.append((arrival, departure, kwh))
        if not (spec.weekdays_only and day.weekday() >= 5):
            for arrival, departure, kwh in sorted(day_cars):
                if not start <= arrival < end:
                    continue
                for c in pool:
                    if all(departure <= a or arrival >= b for a, b in busy[c]):
                        busy[c].append((arrival, departure))
                        out.append((c, arrival, departure, kwh, spec.vehicle_max_kw))
                        break
        day += timedelta(days=1)
    return out
