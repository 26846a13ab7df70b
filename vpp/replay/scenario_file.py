"""The scenario file's schema: strict pydantic models, one per block of the file.

Times are aware datetimes (`2026-07-15T14:00:00+08:00`), ISO 8601 offsets from the scenario
`start` (`PT14H`, `-PT10H`) or numbers of hours from it. Power in kW, consumption positive.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from building.params import BaseLoadParams
from simulators.faults import Faults
from vpp.grid.messages import Event
from vpp.grid.types import Signal, format_duration, parse_duration, parse_time
from vpp.replay.evdraw import EvRandom
from vpp.replay.tariff import DEFAULT_CARBON_KG_PER_KWH, SHANGHAI_TOU, Tariff


def _when(value: Any) -> datetime | timedelta:
    """An aware datetime, an ISO 8601 offset from the start, or hours from the start."""
    if isinstance(value, datetime | timedelta):
        if isinstance(value, datetime):
            return parse_time(value)
        return value
    if isinstance(value, bool):
        raise ValueError("expected a time, an ISO 8601 offset (PT14H) or hours, got a boolean")
    if isinstance(value, int | float):
        return timedelta(hours=float(value))
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-+").startswith("P"):
            return parse_duration(text)
        return parse_time(text)
    raise ValueError(f"expected a time, an ISO 8601 offset (PT14H) or hours, got {value!r}")


def span(value: Any) -> timedelta:
    """A positive duration: ISO 8601 (`P1D`, `PT6H`) or a number of hours."""
    if isinstance(value, bool):
        raise ValueError("expected an ISO 8601 duration or hours, got a boolean")
    d = timedelta(hours=float(value)) if isinstance(value, int | float) else parse_duration(value)
    if d <= timedelta(0):
        raise ValueError(f"must be positive, got {format_duration(d)}")
    return d


When = Annotated[datetime | timedelta, BeforeValidator(_when)]
Span = Annotated[timedelta, BeforeValidator(span)]


def resolve(when: datetime | timedelta, start: datetime) -> datetime:
    """An absolute aware time from a `When`. Offsets are elapsed time from `start` (added in
    UTC, so `PT30H` is 30 real hours even across a daylight-saving change)."""
    if isinstance(when, datetime):
        return when
    return (start.astimezone(UTC) + when).astimezone(start.tzinfo)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Weather(_Strict):
    """Weather: a CSV file (columns `time,outdoor_temp_c,irradiance_w_m2`; path relative to
    the scenario file) or the built-in daily shape's parameters (unset ones come from the
    site file's `sim.environment`)."""

    csv: Path | None = None
    history: Literal["csv", "repeat_first_day"] = "csv"
    """Weather of the history days (`history_days`) before the scenario start: `csv` (the
    file must cover them: a history day before its first row is an error) or
    `repeat_first_day` (the file's first day, by local time of day, for every history day)."""
    outdoor_min_c: float | None = None
    outdoor_max_c: float | None = None
    sunrise_h: Annotated[float, Field(ge=0, le=24)] | None = None
    sunset_h: Annotated[float, Field(ge=0, le=24)] | None = None
    peak_irradiance_w_m2: Annotated[float, Field(ge=0)] | None = None

    def shape(self) -> dict[str, float]:
        """The built-in shape parameters given (those not None)."""
        return {
            k: v for k, v in self.model_dump(exclude={"csv", "history"}).items() if v is not None
        }

    @model_validator(mode="after")
    def _one(self) -> Weather:
        if self.csv is not None and self.shape():
            raise ValueError("give either csv or the built-in shape parameters, not both")
        if self.csv is None and self.history != "csv":
            raise ValueError("history: only for a weather csv (the built-in shape repeats)")
        return self


class Prices(_Strict):
    """Energy prices per kWh (`currency` is a label): constant, 24 hourly values or a
    time-of-use table `{tou: [{start: "08:00", end: "11:00", per_kwh: 1.21}, ...]}`."""

    currency: str = "CNY"
    import_per_kwh: Tariff = SHANGHAI_TOU
    export_per_kwh: Tariff = 0.0


class EvVisit(_Strict):
    """One explicit vehicle visit on a charger."""

    arrival: When
    departure: When
    energy_needed_kwh: Annotated[float, Field(ge=0, le=200)] = 20.0
    vehicle_max_kw: Annotated[float, Field(gt=0, le=350)] = 11.0


class EvArrivals(_Strict):
    """Vehicle visits: `explicit` per charger id, and/or `random` draws (seeded). When the
    scenario has `ev_arrivals`, they replace every charger's sessions of the site file."""

    explicit: dict[str, list[EvVisit]] = Field(default_factory=dict)
    random: EvRandom | None = None
    """One group of drawn vehicles."""
    random_groups: list[EvRandom] = Field(default_factory=list)
    """More groups (e.g. visitors in the afternoon beside the morning's commuters), drawn
    after `random`: a later group's vehicles take the chargers still free."""

    def draws(self, seed: int) -> list[EvRandom]:
        """Every random group with its seed: a group without one gets the scenario's `seed`
        (the first) or `seed + 1000 * k` (the k-th), so groups draw independently."""
        groups = ([self.random] if self.random is not None else []) + self.random_groups
        return [
            g if g.seed is not None else g.model_copy(update={"seed": seed + 1000 * k})
            for k, g in enumerate(groups)
        ]


class IntervalIn(_Strict):
    """One interval of an event: `value` from `start` for `duration`."""

    start: When
    duration: Span
    value: float


class ScenarioEvent(_Strict):
    """A DR event sent to the site at `send_at`: either `intervals`, or `start` + `duration`
    + `value` split into intervals of `interval` (default: one interval)."""

    send_at: When
    event_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+$", min_length=1, max_length=64)]
    signal: Signal
    modification: Annotated[int, Field(ge=0)] = 0
    intervals: list[IntervalIn] | None = None
    start: When | None = None
    duration: Span | None = None
    value: float | None = None
    interval: Span | None = None
    cancelled: bool = False
    test: bool = False
    priority: Annotated[int, Field(ge=0)] | None = None
    program: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> ScenarioEvent:
        simple = [self.start, self.duration, self.value]
        if self.intervals is not None:
            if any(v is not None for v in (*simple, self.interval)):
                raise ValueError("give either intervals or start + duration + value, not both")
            if not self.intervals:
                raise ValueError("intervals: at least one")
        elif any(v is None for v in simple):
            raise ValueError("give intervals, or all of start, duration and value")
        return self

    def interval_list(self, t0: datetime) -> list[tuple[datetime, timedelta, float]]:
        """(start, duration, value) of each interval; offsets count from the scenario start."""
        if self.intervals is not None:
            return [(resolve(i.start, t0), i.duration, i.value) for i in self.intervals]
        assert self.start is not None and self.duration is not None and self.value is not None
        start, total = resolve(self.start, t0), self.duration
        step = self.interval or total
        out, offset = [], timedelta(0)
        while offset < total:
            length = min(step, total - offset)
            out.append((start + offset, length, self.value))
            offset += length
        return out


class FaultWindow(_Strict):
    """A device fault from `from` to `to` (default: the end of the run)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    device: str
    from_: When = Field(alias="from")
    to: When | None = None
    offline: bool = False
    delay_s: Annotated[float, Field(ge=0, le=3600)] = 0.0
    ignore_commands: bool = False
    stuck: bool = False
    exception_code: Literal[1, 2, 3, 4, 5, 6, 10, 11] | None = None
    write_exception_code: Literal[1, 2, 3, 4, 5, 6, 10, 11] | None = None

    def faults(self) -> Faults:
        """The simulator fault set this window applies."""
        return Faults(
            offline=self.offline,
            delay_s=self.delay_s,
            ignore_commands=self.ignore_commands,
            stuck=self.stuck,
            exception_code=self.exception_code,
            write_exception_code=self.write_exception_code,
        )

    @model_validator(mode="after")
    def _some(self) -> FaultWindow:
        if self.faults() == Faults():
            raise ValueError(
                "a fault needs one of offline, delay_s, ignore_commands, stuck, exception_code,"
                " write_exception_code"
            )
        return self


def _one_or_many(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


class ScenarioConfig(_Strict):
    """A whole scenario file."""

    name: str = ""
    description: str = ""
    site: Path
    timezone: str | None = None
    start: AwareDatetime
    duration: Span
    seed: int = 0
    strategy: Literal["optimiser", "rules", "none"] = "optimiser"
    history_days: Annotated[int, Field(ge=0, le=45)] = 0
    weather: Weather = Weather()
    prices: Prices = Prices()
    carbon_kg_per_kwh: Tariff = DEFAULT_CARBON_KG_PER_KWH
    base_load: dict[str, Any] = Field(default_factory=dict)
    ev_arrivals: EvArrivals | None = None
    events: list[ScenarioEvent] = Field(default_factory=list)
    faults: list[FaultWindow] = Field(default_factory=list)
    broker_restart_at: Annotated[list[When], BeforeValidator(_one_or_many)] = Field(
        default_factory=list
    )
    agent_kill_at: Annotated[list[When], BeforeValidator(_one_or_many)] = Field(
        default_factory=list
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError) as e:
                raise ValueError(f"unknown time zone {v!r}") from e
        return v

    @field_validator("base_load")
    @classmethod
    def _base_load(cls, v: dict[str, Any]) -> dict[str, Any]:
        BaseLoadParams.model_validate(v)  # the fields it may set, checked alone
        return v

    @field_validator("events")
    @classmethod
    def _unique_mods(cls, v: list[ScenarioEvent]) -> list[ScenarioEvent]:
        seen: set[tuple[str, int]] = set()
        for e in v:
            key = (e.event_id, e.modification)
            if key in seen:
                raise ValueError(f"event {e.event_id!r} modification {e.modification} twice")
            seen.add(key)
        return v


def build_message(e: ScenarioEvent, start: datetime) -> Event:
    """The contract Event of a scenario event (offsets from `start`), validated against the
    contract as the site will at the send time; raises pydantic's ValidationError."""
    sent = resolve(e.send_at, start)
    data: dict[str, Any] = {
        "v": 1,
        "event_id": e.event_id,
        "modification": e.modification,
        "signal": e.signal,
        "intervals": [
            {"start": s.isoformat(), "duration": format_duration(d), "value": v}
            for s, d, v in e.interval_list(start)
        ],
        "cancelled": e.cancelled,
        "test": e.test,
    }
    if e.priority is not None:
        data["priority"] = e.priority
    if e.program is not None:
        data["program"] = e.program
    return Event.model_validate_json(json.dumps(data), context={"now": sent})
