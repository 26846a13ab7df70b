"""Per-device contribution to an event: how much each device reduced its draw, and when it was
offline.

A device's reference is its own baseline when one is given, else its mean power over a
pre-event window (by default the baseline's adjustment window, which skips the hour before
the event so that pre-cooling or pre-charging does not count as a reference). Contribution is
reference − actual (kW, positive = the device drew less than its reference; a battery that
discharges contributes its discharge plus its reference).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from vpp.measure.series import IntervalAverage, StepSeries, utc


@dataclass(frozen=True)
class DeviceInput:
    """One device's power (kW, consumption positive), with optional own baseline and known
    offline periods `[(start, end), ...]`. Gaps in `power` also count as offline."""

    device_id: str
    power: StepSeries
    baseline: Sequence[IntervalAverage] | None = None
    offline: Sequence[tuple[datetime, datetime]] = ()


@dataclass(frozen=True)
class DeviceInterval:
    """A device over one event interval: mean power, reference and contribution (kW)."""

    start: datetime
    duration: timedelta
    actual_kw: float | None
    reference_kw: float | None
    contribution_kw: float | None
    offline: bool


@dataclass(frozen=True)
class DeviceContribution:
    """A device's contribution over the reported intervals.

    `method` is `device_baseline` or `pre_event_mean`; energies in kWh over the intervals where
    both the device and its reference have data; `contribution_kwh` = reference − actual.
    """

    device_id: str
    method: str
    reference_kw: float | None
    event_energy_kwh: float
    reference_energy_kwh: float
    contribution_kwh: float
    intervals: tuple[DeviceInterval, ...]
    note: str | None = None

    @property
    def offline_starts(self) -> tuple[datetime, ...]:
        """Starts (UTC) of the intervals in which the device was offline."""
        return tuple(i.start for i in self.intervals if i.offline)


def _overlaps(periods: Sequence[tuple[datetime, datetime]], start: datetime, end: datetime) -> bool:
    return any(utc(a) < end and utc(b) > start for a, b in periods)


def device_contribution(
    device: DeviceInput,
    intervals: Sequence[tuple[datetime, timedelta]],
    *,
    reference_window: tuple[datetime, datetime],
    min_coverage: float = 0.9,
) -> DeviceContribution:
    """Contribution of `device` over `intervals` (UTC starts and durations).

    Without a device baseline, the reference is the device's mean power over
    `reference_window`; if that window has too little data the reference is unknown and
    `note` says so.
    """
    note: str | None = None
    ref_series: StepSeries | None = None
    ref_kw: float | None = None
    if device.baseline is not None:
        method = "device_baseline"
        ref_series = StepSeries.from_intervals(device.baseline, name=f"{device.device_id}.baseline")
    else:
        method = "pre_event_mean"
        w0, w1 = reference_window
        ref_kw = device.power.average(w0, w1, min_coverage=min_coverage).kw
        if ref_kw is None:
            note = (
                f"no reference: device data covers less than {min_coverage:.0%} of "
                f"{utc(w0).isoformat()}–{utc(w1).isoformat()}"
            )
    rows: list[DeviceInterval] = []
    actual_kwh: list[float] = []
    ref_kwh: list[float] = []
    for start, duration in intervals:
        end = start + duration
        avg = device.power.average(start, end, min_coverage=min_coverage)
        offline = avg.coverage < 1.0 or _overlaps(device.offline, start, end)
        ref = ref_kw
        if ref_series is not None:
            ref = ref_series.average(start, end).kw
        contrib = None if ref is None or avg.kw is None else ref - avg.kw
        rows.append(DeviceInterval(start, duration, avg.kw, ref, contrib, offline))
        if contrib is not None and avg.kw is not None and ref is not None:
            hours = duration / timedelta(hours=1)
            actual_kwh.append(avg.kw * hours)
            ref_kwh.append(ref * hours)
    event_kwh, reference_kwh = math.fsum(actual_kwh), math.fsum(ref_kwh)
    return DeviceContribution(
        device.device_id,
        method,
        ref_kw,
        event_kwh,
        reference_kwh,
        reference_kwh - event_kwh,
        tuple(rows),
        note,
    )
