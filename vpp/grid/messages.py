"""The contract's messages as strict pydantic models: Event in; Response, Report, Status and
Telemetry out (docs/grid-messages.md, docs/schemas/*.json).

Report, Status and Telemetry carry exactly the contract's fields (what a site publishes by
default); ExtendedReport, ExtendedStatus and ExtendedTelemetry add this site's extension
fields, published only with the site setting `grid.extensions: true`
(docs/schemas/extended/*.json).

Every model forbids unknown fields and is strict (no `"1"` for 1, no `true` for a number).
Power is in kW, consumption positive (+kW drawn from the grid). Event limits that need the
site's clock (an interval ending more than 7 days ahead) are checked only when validation
gets `context={"now": aware_datetime}`; `vpp.grid.parse.parse_event` always passes it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from vpp.grid.types import (
    CARBON_RANGE,
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
Finite = Annotated[float, Field(allow_inf_nan=False)]
NonNegative = Annotated[float, Field(allow_inf_nan=False, ge=0.0)]
IsoDate = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]


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
    """kW for curtail_kw (reduction below baseline), import_cap_kw (import ceiling),
    export_cap_kw (export ceiling) and import_target_kw (the import to follow); currency per
    kWh for price; kg CO2/kWh for carbon."""

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
    import ≤ value kW (0–100000); price: energy price per kWh (−10000…10000); extensions:
    export_cap_kw: keep export ≤ value kW (0–100000); import_target_kw: import value kW,
    neither more nor less (0–100000); carbon: the grid's carbon intensity
    in kg CO2/kWh (0–10)."""
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


VALUE_RANGES: dict[Signal, tuple[float, float]] = {
    "curtail_kw": CURTAIL_RANGE_KW,
    "import_cap_kw": CURTAIL_RANGE_KW,
    "export_cap_kw": CURTAIL_RANGE_KW,
    "import_target_kw": CURTAIL_RANGE_KW,
    "price": PRICE_RANGE,
    "carbon": CARBON_RANGE,
}
"""Inclusive range of an interval's `value`, per signal."""

VALUE_UNITS: dict[Signal, str] = {
    "curtail_kw": "kW",
    "import_cap_kw": "kW",
    "export_cap_kw": "kW",
    "import_target_kw": "kW",
    "price": "per kWh",
    "carbon": "kg CO2/kWh",
}


def event_problems(event: Event, now: datetime | None) -> list[tuple[str, str]]:
    """Cross-field contract checks of an event as (loc, msg) pairs; empty when it is valid.

    Value ranges depend on the signal; intervals must be in start order and not overlap;
    with `now`, no interval may end more than 7 days after it.
    """
    problems: list[tuple[str, str]] = []
    lo, hi = VALUE_RANGES[event.signal]
    unit = VALUE_UNITS[event.signal]
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


class IntervalMissing(WireModel):
    """Extension: what the measurement of one interval lacks, and notes on a shortfall."""

    offline_devices: list[DeviceId] = Field(default_factory=list)
    """Devices offline during the interval."""
    notes: list[Text] = Field(default_factory=list)
    """Sentences: why a value is null, or why the site could not deliver more."""


class ReportInterval(WireModel):
    """Performance of one event interval, exactly the contract's fields (kW are interval
    means, consumption positive; null when unknown)."""

    start: Time
    duration: Duration
    requested_kw: NonNegative | None
    """Requested reduction: curtail value, or max(0, baseline − cap); null when it cannot be
    known (a cap without a baseline, a price signal)."""
    baseline_kw: Kw | None
    actual_kw: Kw | None
    delivered_kw: Kw | None
    """baseline − actual (positive: less import than the baseline)."""


class ExtendedReportInterval(ReportInterval):
    """Extension (site setting `grid.extensions: true`): the contract's interval fields plus
    `ratio`, `shortfall_kw` and `missing`."""

    ratio: Ratio | None = None
    """Extension: delivered ÷ requested; null while unmeasured or when nothing was requested."""
    shortfall_kw: Kw | None = None
    """Extension: how far delivery fell short of the request (kW, 0 when met)."""
    missing: IntervalMissing | None = None
    """Extension: offline devices and notes for this interval."""


class BaselineAdjustment(WireModel):
    """Extension detail: the day-of adjustment applied to an X-of-Y baseline."""

    mode: Literal["multiplicative", "additive", "none"]
    window_start: Time
    window_end: Time
    raw: Finite | None
    """The adjustment as computed (a factor, or kW for additive)."""
    applied: Finite
    """The adjustment after the cap."""
    capped: bool
    reason: Text | None
    moved: Text | None = None
    """Present only when the window was moved earlier past another event, its recovery or the
    event's own preparation: where to and why."""


class ExcludedDay(WireModel):
    """Extension detail: a day looked at for the like days and not used."""

    day: IsoDate
    why: Text
    """e.g. `event day`, `holiday (Dragon Boat Festival), not a like day of a working day`."""


class Fallback(WireModel):
    """Extension detail: a settlement method that made no baseline, and why."""

    method: Label
    reason: Text


class BaselineDetails(WireModel):
    """Extension detail: how the baseline was made."""

    method: Label | None = None
    """The method that made it (as `baseline_method`)."""
    days_used: list[IsoDate]
    """The like days averaged (local dates)."""
    days_considered: list[IsoDate] = Field(default_factory=list)
    """The eligible like days the `days_used` were chosen from."""
    days_excluded: list[ExcludedDay] = Field(default_factory=list)
    """Days looked at and left out (past event days, holidays, other day types, gaps)."""
    calendar: Label | None = None
    """The public holiday calendar used (`CN`, `US-NY`; `none`: Monday–Friday)."""
    fallbacks: list[Fallback] = Field(default_factory=list)
    """Methods tried before `method`, each with why it made no baseline."""
    adjustment: BaselineAdjustment | None
    reason: Text | None
    """Why the baseline fell back or is incomplete."""


class ZoneDetails(WireModel):
    """Extension detail: comfort of one thermal zone during the event."""

    zone_id: DeviceId
    violation_degC_h: NonNegative
    """Degree-hours outside the comfort band (°C·h)."""
    gaps: Count
    """Telemetry gaps in the zone temperature."""


class DeviceDetails(WireModel):
    """Extension detail: what one device contributed (kWh against its own reference)."""

    device_id: DeviceId
    method: Label
    """`device_baseline` or `pre_event_mean`."""
    reference_kw: Kw | None
    event_energy_kwh: Finite
    reference_energy_kwh: Finite
    contribution_kwh: Finite
    """reference − actual energy (kWh; positive: the device shed load)."""
    offline_intervals: list[Time]
    """Starts of the intervals in which the device was offline."""
    note: Text | None


class ReportDetails(WireModel):
    """Extension: what a settlement needs beyond the contract's report."""

    final: bool
    signal: Signal
    requested_kwh: NonNegative
    delivered_kwh: Finite
    baseline: BaselineDetails | None
    zones: list[ZoneDetails]
    devices: list[DeviceDetails]
    notes: list[Text]


class _ReportFields(WireModel):
    """The contract's report fields other than `intervals`."""

    v: Version = 1
    event_id: EventId
    modification: Count
    program: Label | None
    """The event's program label, null when it had none."""
    baseline_method: Label
    delivered_ratio: Ratio | None
    """Total delivered ÷ total requested energy over the measured intervals."""
    comfort_violation_degC_h: NonNegative
    """Degree-hours spent outside the comfort bands during the event (°C·h)."""


class Report(_ReportFields):
    """An event's performance report, exactly the contract's fields (grid-interface.md
    §Report): what a site with `grid.extensions: false` (the default) publishes."""

    intervals: list[ReportInterval]
    """The intervals ended so far (all of them in the final report)."""


class ExtendedReport(_ReportFields):
    """Extension (site setting `grid.extensions: true`): the contract's report plus `signal`,
    `ts`, `final`, `details` and the intervals' `ratio`, `shortfall_kw`, `missing`."""

    intervals: list[ExtendedReportInterval]
    """The intervals ended so far (all of them in the final report)."""
    signal: Signal
    """Extension: the event's signal."""
    ts: Time
    """Extension: when the report was made."""
    final: bool | None = None
    """Extension: true for the report after the event's end (then `completed` follows)."""
    details: ReportDetails | None = None
    """Extension: energies, baseline days and adjustment, per-zone and per-device details."""


class Status(WireModel):
    """The retained site status, exactly the contract's fields: `{"v": 1, "online": ...}`;
    also the MQTT last will (`{"v": 1, "online": false}`) in both modes."""

    _exclude_none: ClassVar[bool] = True
    v: Version = 1
    online: bool


class ExtendedStatus(Status):
    """Extension (site setting `grid.extensions: true`): the status with when, who, which
    version and why."""

    ts: Time | None = None
    """When the agent came online (or went offline cleanly); absent in the last will."""
    site_id: Label | None = None
    agent_version: Label | None = None
    reason: Text | None = None
    """Why the site went offline, on a clean shutdown."""


DeviceKind = Label
"""A device kind as a site reports it (`hvac` is a thermal zone): one registered in
vpp.kinds (each kind's plugin names its wire kind and telemetry fields)."""


class _KindFields(Mapping[str, frozenset[str]]):
    """Per wire kind, its own telemetry fields, read from the kinds registry when first used
    (the registry imports the control code; the wire models are imported without it)."""

    def __init__(self) -> None:
        self._source: dict[str, frozenset[str]] | None = None
        self._kinds: dict[str, frozenset[str]] = {}
        self._all: frozenset[str] = frozenset()

    def _table(self) -> dict[str, frozenset[str]]:
        from vpp.kinds import wire_kind_fields

        source = wire_kind_fields()  # the same dict until a plugin is registered
        if source is not self._source:
            self._kinds = {k: v for k, v in source.items() if v}
            self._all = frozenset().union(*self._kinds.values())
            self._source = source
        return self._kinds

    def all_fields(self) -> frozenset[str]:
        """Every kind's own fields together."""
        self._table()
        return self._all

    def __getitem__(self, kind: str) -> frozenset[str]:
        return self._table()[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def known(self, kind: str) -> bool:
        """Whether `kind` is a registered wire kind (with or without fields of its own)."""
        from vpp.kinds import wire_kind_fields

        return kind in wire_kind_fields()


KIND_FIELDS = _KindFields()
"""The kind-specific telemetry fields of each kind that has any; other kinds have none."""


class DeviceTelemetry(WireModel):
    """One device in a telemetry message, exactly the contract's fields: `online`,
    `power_kw` and the kind's own fields; a field is absent when unknown."""

    online: bool
    power_kw: Kw | None = None
    """kW, consumption positive (a discharging battery, a producing PV are negative);
    absent when the device is offline."""
    soc: Annotated[float, Field(allow_inf_nan=False, ge=0.0, le=100.0)] | None = None
    """Battery state of charge (%)."""
    plugged: bool | None = None
    """EV charger: a vehicle is plugged in."""
    energy_kwh: Annotated[float, Field(allow_inf_nan=False)] | None = None
    """EV charger: energy of the current session (kWh)."""
    zone_temp_c: Annotated[float, Field(allow_inf_nan=False)] | None = None
    """Thermal zone: its temperature (°C)."""
    setpoint_c: Annotated[float, Field(allow_inf_nan=False)] | None = None
    """Thermal zone: its setpoint (°C)."""


class ExtendedDeviceTelemetry(DeviceTelemetry):
    """Extension (site setting `grid.extensions: true`): the device's `kind`, and `reason`
    when it is offline or a reading was left out."""

    kind: DeviceKind | None = None
    """Extension: the device's kind, saying which of the kind fields it has."""
    reason: Text | None = None
    """Extension: why the device is offline or a reading was left out."""

    @model_validator(mode="after")
    def _kind_fields(self) -> ExtendedDeviceTelemetry:
        if self.kind is not None:
            if not KIND_FIELDS.known(self.kind):
                raise ValueError(f"kind: {self.kind!r} is not a known device kind")
            own = KIND_FIELDS.get(self.kind, frozenset())
            foreign = sorted(
                f for f in KIND_FIELDS.all_fields() if f not in own and getattr(self, f) is not None
            )
            if foreign:
                raise ValueError(f"a {self.kind} has no {', '.join(foreign)}")
        return self

    def contract(self) -> DeviceTelemetry:
        """The entry with exactly the contract's fields (`kind` and `reason` dropped)."""
        return DeviceTelemetry(**self.model_dump(exclude={"kind", "reason"}))


class _TelemetryFields(WireModel):
    _exclude_none: ClassVar[bool] = True
    v: Version = 1
    ts: Time
    site_import_kw: Kw | None
    """Site import from the grid (kW; negative when exporting); null while the site meter is
    offline."""

    def payload(self) -> dict[str, Any]:
        """The message as JSON data: unknown device fields left out, `site_import_kw` kept."""
        out = self.model_dump(mode="json", exclude_none=True)
        out["site_import_kw"] = self.site_import_kw
        return out

    def to_json(self) -> bytes:
        """The message as UTF-8 JSON bytes, ready to publish."""
        return json.dumps(self.payload(), separators=(",", ":")).encode()


class Telemetry(_TelemetryFields):
    """Site and device telemetry every telemetry period, exactly the contract's fields."""

    devices: dict[DeviceId, DeviceTelemetry]
    """Per device id of the site file."""


class ExtendedTelemetry(_TelemetryFields):
    """Extension (site setting `grid.extensions: true`): each device also has `kind` and,
    when offline or a reading was left out, `reason`."""

    devices: dict[DeviceId, ExtendedDeviceTelemetry]
    """Per device id of the site file."""
    baseline_kw: Kw | None = None
    """Extension: while the site acts in an event, its settlement baseline now (kW: the
    baseline profile's 15-min step; its mean over an event interval is what the interval's
    report states), for an aggregator to measure `site_import_kw` against; absent
    otherwise."""

    def contract(self) -> Telemetry:
        """The message with exactly the contract's fields."""
        return Telemetry(
            v=self.v,
            ts=self.ts,
            site_import_kw=self.site_import_kw,
            devices={k: d.contract() for k, d in self.devices.items()},
        )


def model_context(now: datetime) -> dict[str, Any]:
    """The validation context that enables the `now`-relative event checks."""
    return {"now": now}
