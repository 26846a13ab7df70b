"""The site file's `settlement:` section: how each DR program's reported baseline is made.

Per program (the event's `program` label; `default` for the rest): a baseline method, an
optional method for short-notice events, and a fallback chain tried in order when a method
cannot make a baseline (too little history, meter gaps). Methods:

- `x_of_y`: like days (10-of-10, 5-of-5 working days, high-5-of-10, ...) with an optional
  day-of adjustment (additive or multiplicative, capped);
- `pre_event_mean`: the mean site import over the N minutes before the event, held flat.

Plain data (pydantic, strict): the agent's reporter and the replay read it; nothing here
reads the store.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from vpp.measure.baseline import XofYConfig
from vpp.measure.calendar import DayCalendar, check_country, country_of_zone


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class XofYMethod(_Strict):
    """Of the `y` most recent like days (within `max_lookback_days`; past event days and
    public holidays left out), the `x` with the highest load over the event window,
    averaged per interval; then the day-of adjustment over `adjustment_window_min` ending
    `adjustment_gap_min` before the event, capped at ±`adjustment_cap`. Fewer than
    `min_days` like days (default: y, at most 5): this method gives no baseline."""

    method: Literal["x_of_y"]
    x: Annotated[int, Field(ge=1, le=60)] = 10
    y: Annotated[int, Field(ge=1, le=60)] = 10
    min_days: Annotated[int, Field(ge=1, le=60)] | None = None
    max_lookback_days: Annotated[int, Field(ge=1, le=180)] = 45
    adjustment: Literal["multiplicative", "additive", "none"] = "multiplicative"
    adjustment_cap: Annotated[float, Field(ge=0, lt=1)] | None = 0.20
    adjustment_window_min: Annotated[int, Field(ge=15, le=1440, multiple_of=15)] = 180
    adjustment_gap_min: Annotated[int, Field(ge=0, le=1440, multiple_of=15)] = 60

    @model_validator(mode="after")
    def _consistent(self) -> XofYMethod:
        if self.x > self.y:
            raise ValueError(f"x: {self.x} is more than y={self.y}")
        if self.min_days is not None and self.min_days > self.y:
            raise ValueError(f"min_days: {self.min_days} is more than y={self.y}")
        if self.max_lookback_days < self.y:
            raise ValueError(f"max_lookback_days: {self.max_lookback_days} is less than y={self.y}")
        return self

    def config(self) -> XofYConfig:
        """The measurement's configuration of this method."""
        return XofYConfig(
            x=self.x,
            y=self.y,
            max_lookback_days=self.max_lookback_days,
            min_days=self.min_days if self.min_days is not None else min(5, self.y),
            adjustment=self.adjustment,
            adjustment_window=timedelta(minutes=self.adjustment_window_min),
            adjustment_gap=timedelta(minutes=self.adjustment_gap_min),
            adjustment_cap=self.adjustment_cap,
        )

    @property
    def label(self) -> str:
        """The report's `baseline_method`, e.g. `x_of_y:5/5:none`."""
        return self.config().label


class PreEventMethod(_Strict):
    """The mean site import over the `minutes` before the event (ending `gap_minutes` before
    its start), held flat over the event: for events too short-notice for like days. Needs
    `min_coverage` of that window metered (0: any metered part of it, e.g. an agent started
    just before the event; the report then says how much)."""

    method: Literal["pre_event_mean"]
    minutes: Annotated[int, Field(ge=1, le=1440)] = 60
    gap_minutes: Annotated[int, Field(ge=0, le=1440)] = 0
    min_coverage: Annotated[float, Field(ge=0, le=1)] = 0.9

    @property
    def label(self) -> str:
        """The report's `baseline_method`, e.g. `pre_event_mean:60min`,
        `pre_event_mean:60min:any` (any coverage)."""
        gap = f":gap={self.gap_minutes}min" if self.gap_minutes else ""
        cov = "" if self.min_coverage == 0.9 else f":cov={self.min_coverage:g}"
        if self.min_coverage == 0:
            cov = ":any"
        return f"pre_event_mean:{self.minutes}min{gap}{cov}"


BaselineMethod = Annotated[XofYMethod | PreEventMethod, Field(discriminator="method")]


def _default_fallback() -> list[XofYMethod | PreEventMethod]:
    # The hour before, metered; else whatever of it is (an agent started just before).
    return [
        PreEventMethod(method="pre_event_mean"),
        PreEventMethod(method="pre_event_mean", min_coverage=0.0),
    ]


class ProgramSettlement(_Strict):
    """How one program's events are settled. An event sent less than `short_notice_min`
    minutes before its start uses `short_notice`; the others `baseline`. When the chosen
    method makes no baseline, the `fallback` methods are tried in order (the report says
    which fell back and why)."""

    baseline: BaselineMethod = XofYMethod(method="x_of_y")
    short_notice_min: Annotated[float, Field(gt=0, le=10080)] | None = None
    short_notice: BaselineMethod = PreEventMethod(method="pre_event_mean")
    fallback: list[BaselineMethod] = Field(default_factory=_default_fallback, max_length=5)


class SettlementConfig(_Strict):
    """The site file's `settlement:` section. `country`/`subdivision`: the public holiday
    calendar (ISO 3166 codes as the `holidays` package takes them; default: the country of
    the site's time zone, e.g. CN for Asia/Shanghai; `none`: Monday–Friday, no holidays)."""

    country: str | None = None
    subdivision: str | None = None
    default: ProgramSettlement = ProgramSettlement()
    programs: dict[Annotated[str, Field(min_length=1, max_length=64)], ProgramSettlement] = Field(
        default_factory=dict
    )

    @field_validator("country")
    @classmethod
    def _known_country(cls, v: str | None) -> str | None:
        if v is not None and v != "none":
            check_country(v, None)
        return v

    @field_validator("subdivision")
    @classmethod
    def _known_subdivision(cls, v: str | None, info: ValidationInfo) -> str | None:
        country = info.data.get("country")
        if v is not None:
            if country is None or country == "none":
                raise ValueError("given without a country")
            check_country(country, v)
        return v

    def program(self, name: str | None) -> ProgramSettlement:
        """The settlement of program `name` (the default for none or an unlisted one)."""
        return self.programs.get(name, self.default) if name is not None else self.default

    def calendar(self, timezone: str) -> DayCalendar:
        """The site's holiday calendar (`country`, else the time zone's country)."""
        if self.country == "none":
            return DayCalendar()
        if self.country is not None:
            return DayCalendar(self.country, self.subdivision)
        country = country_of_zone(timezone)
        try:
            if country is not None:
                check_country(country, None)
        except ValueError:
            country = None
        return DayCalendar(country)
