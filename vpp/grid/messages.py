"""The contract's messages as strict pydantic models: Event in; Response, Report, Status and
Telemetry out (docs/grid-messages.md, docs/schemas/*.json).

Every model forbids unknown fields and is strict (no `"1"` for 1, no `true` for a number).
Power is in kW, consumption positive (+kW drawn from the grid). Event limits that need the
site's clock (an interval ending more than 7 days ahead) are checked only when validation
gets `context={"now": aware_datetime}`; `vpp.grid.parse.parse_event` always passes it.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from vpp.grid.types import (
    CURTAIL_RANGE_KW,
    MAX_AHEAD,
    MAX_DURATION,
    MAX_INTERVALS,
    PRICE_RANGE,
    Count,
    DeviceId,
    Duration,
    EventId,
    Kw,
    Label,
    ResponseStatus,
    Signal,
    Time,
    Version,
)

CONTRACT_ERROR = "event_contract"
"""pydantic error type of the cross-field checks; ctx["problems"] holds (loc, msg) pairs."""

Text = Annotated[str, Field(max_length=1000)]
Ratio = Annotated[float, Field(allow_inf_nan=False)]
NonNegative = Annotated[float, Field(allow_inf_nan=False, ge=0.0)]


class WireModel(BaseModel):
    """Base of every message: strict, unknown fields forbidden, immutable."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        frozen=True,
        use_attribute_docstrings=True,
    )
    _exclude_none: ClassVar[bool] = False

    def to_json(self) -> bytes:
        """The message as UTF-8 JSON bytes, ready to publish."""
        return self.model_dump_json(exclude_none=self._exclude_none).encode()


class Interval(WireModel):
    """One interval of an event: `value` applies from `start` for `duration`."""

    start: Time
    """When the interval begins (RFC 3339 with offset)."""
    duration: Duration
    """Positive, at most P1D."""
    value: Annotated[float, Field(allow_inf_nan=False)]
    """kW for curtail_kw (reduction below baseline) and import_cap_kw (import ceiling);
    currency per kWh for price."""

    @field_validator("duration")
    @classmethod
    def _duration_in_range(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("duration must be positive")
        if v > MAX_DURATION:
            raise ValueError("duration must be at most one day (P1D)")
        return v

    @property
    def end(self) -> datetime:
        """When the interval ends (exclusive)."""
        return self.start + self.duration


class Event(WireModel):
    """A demand-response event from the grid operator (create, modify or cancel)."""

    v: Version
    """Contract version: 1."""
    event_id: EventId
    """Stable id of the event: 1–64 of A-Za-z0-9._-"""
    modification: Count
    """Higher replaces; equal is a duplicate; lower is stale."""
    signal: Signal
    """curtail_kw: reduce import by value kW below baseline (0–100000); import_cap_kw: keep
    import ≤ value kW (0–100000); price: energy price per kWh (−10000…10000)."""
    intervals: Annotated[list[Interval], Field(min_length=1, max_length=MAX_INTERVALS)]
    """1–288, in start order, not overlapping; none may end more than 7 days ahead."""
    priority: Count | None = None
    """Lower is more important where events overlap; absent ranks after every number."""
    cancelled: bool = False
    """True ends the event now; recovery follows."""
    test: bool = False
    """Validate, store and respond, but never act."""
    program: Label | None = None
    """Free label of 1–64 characters, echoed in reports."""

    @model_validator(mode="after")
    def _contract(self, info: ValidationInfo) -> Event:
        now = info.context.get("now") if isinstance(info.context, dict) else None
        problems = event_problems(self, now)
        if problems:
            raise PydanticCustomError(
                CONTRACT_ERROR,
                "{summary}",
                {
                    "summary": "; ".join(f"{loc}: {msg}" for loc, msg in problems),
                    "problems": problems,
                },
            )
        return self

    @property
    def start(self) -> datetime:
        """Start of the first interval."""
        return self.intervals[0].start

    @property
    def end(self) -> datetime:
        """End of the last interval."""
        return self.intervals[-1].end


def event_problems(event: Event, now: datetime | None) -> list[tuple[str, str]]:
    """Cross-field contract checks of an event as (loc, msg) pairs; empty when it is valid.

    Value ranges depend on the signal; intervals must be in start order and not overlap;
    with `now`, no interval may end more than 7 days after it.
    """
    problems: list[tuple[str, str]] = []
    lo, hi = PRICE_RANGE if event.signal == "price" else CURTAIL_RANGE_KW
    unit = "per kWh" if event.signal == "price" else "kW"
    for i, iv in enumerate(event.intervals):
        if not (lo <= iv.value <= hi) or not math.isfinite(iv.value):
            problems.append(
                (
                    f"intervals[{i}].value",
                    f"{event.signal} value must be within {lo:g}…{hi:g} {unit}, got {iv.value:g}",
                )
            )
        if i > 0:
            prev = event.intervals[i - 1]
            if iv.start < prev.start:
                problems.append(
                    (
                        f"intervals[{i}].start",
                        f"intervals must be in start order: starts before intervals[{i - 1}]",
                    )
                )
            elif iv.start < prev.end:
                problems.append(
                    (
                        f"intervals[{i}].start",
                        f"overlaps intervals[{i - 1}], which ends at {prev.end.isoformat()}",
                    )
                )
        if now is not None and iv.end > now + MAX_AHEAD:
            problems.append(
                (
                    f"intervals[{i}]",
                    f"ends at {iv.end.isoformat()}, more than 7 days after now ({now.isoformat()})",
                )
            )
    return problems


class FieldError(WireModel):
    """One bad field of a rejected message: `loc` like `intervals[2].duration`."""

    loc: Text
    msg: Text


class Response(WireModel):
    """The site's answer to one event message."""

    v: Version = 1
    event_id: EventId | None
    """Echo; null when the message could not be read far enough to find it."""
    modification: Count | None
    status: ResponseStatus
    """received · opt_in · opt_out · rejected · cancelled · completed"""
    expected_kw: list[Kw] | None = None
    """Per interval, the reduction (curtail) or the cap (import_cap) the site expects to
    deliver, when opting in (kW)."""
    reason: Text | None = None
    """A sentence, for opt_out and rejected."""
    errors: list[FieldError] = Field(default_factory=list)
    """For rejected: each bad field."""
    ts: Time
    """When the response was made."""


class ReportInterval(WireModel):
    """Performance of one event interval (kW are interval means, consumption positive)."""

    start: Time
    duration: Duration
    requested_kw: NonNegative
    """Requested reduction: curtail value, or max(0, baseline − cap)."""
    baseline_kw: Kw | None = None
    actual_kw: Kw | None = None
    delivered_kw: Kw | None = None
    """baseline − actual (positive: less import than the baseline)."""
    ratio: Ratio | None = None
    """delivered ÷ requested; null while unmeasured or when nothing was requested."""
    missing_reason: Text | None = None
    """Why baseline or actual is null (e.g. meter offline, interval not reached yet)."""


class DeviceContribution(WireModel):
    """What one device did during the event."""

    delivered_kwh: Annotated[float, Field(allow_inf_nan=False)]
    """Energy the device shed against its own baseline over the event (kWh)."""
    mean_kw: Kw | None = None
    """Its mean power during the event (kW, consumption positive)."""
    online: bool = True


class Report(WireModel):
    """An event's performance report: while active and once completed (`final`)."""

    v: Version = 1
    event_id: EventId
    modification: Count
    program: Label | None = None
    signal: Signal
    test: bool = False
    baseline_method: Label
    final: bool = False
    intervals: list[ReportInterval]
    requested_kwh: NonNegative = 0.0
    delivered_kwh: Annotated[float, Field(allow_inf_nan=False)] = 0.0
    delivered_ratio: Ratio | None = None
    """Total delivered ÷ total requested energy over the measured intervals."""
    comfort_violation_degC_h: NonNegative = 0.0
    """Degree-hours spent outside the comfort bands during the event (°C·h)."""
    devices: dict[DeviceId, DeviceContribution] = Field(default_factory=dict)
    missing_reason: Text | None = None
    ts: Time


class Status(WireModel):
    """The retained site status; the MQTT last will is `{"v": 1, "online": false}`."""

    _exclude_none: ClassVar[bool] = True
    v: Version = 1
    online: bool
    ts: Time | None = None
    site_id: Label | None = None
    agent_version: Label | None = None
    reason: Text | None = None


class DeviceTelemetry(WireModel):
    """One device in a telemetry message; kind-specific fields are absent when unknown."""

    online: bool
    power_kw: Kw | None = None
    """kW, consumption positive (a discharging battery is negative)."""
    kind: Label | None = None
    soc: Annotated[float, Field(allow_inf_nan=False, ge=0.0, le=100.0)] | None = None
    """Battery state of charge (%)."""
    plugged: bool | None = None
    energy_kwh: Annotated[float, Field(allow_inf_nan=False)] | None = None
    """EV charger: energy of the current session (kWh)."""
    zone_temp_c: Annotated[float, Field(allow_inf_nan=False)] | None = None
    setpoint_c: Annotated[float, Field(allow_inf_nan=False)] | None = None
    reason: Text | None = None
    """Why the device is offline or degraded."""


class Telemetry(WireModel):
    """Site and device telemetry, every telemetry period."""

    _exclude_none: ClassVar[bool] = True
    v: Version = 1
    ts: Time
    site_import_kw: Kw
    """Site import from the grid (kW; negative when exporting)."""
    devices: dict[DeviceId, DeviceTelemetry] = Field(default_factory=dict)


def model_context(now: datetime) -> dict[str, Any]:
    """The validation context that enables the `now`-relative event checks."""
    return {"now": now}
