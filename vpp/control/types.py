"""Plain data that flows through one control cycle: snapshot in, commands out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from devices.health import Health


@dataclass(frozen=True)
class DeviceView:
    """One device as the cycle sees it: last reading (canonical names), usable or not, and
    its health (None: the device has no driver)."""

    id: str
    usable: bool
    values: Mapping[str, float]
    read_ts: datetime | None = None
    reason: str = ""
    health: Health | None = None

    @property
    def starting(self) -> bool:
        """Not polled yet: nothing is known about the device, nor anything wrong with it."""
        return self.health is not None and not self.health.polled


@dataclass(frozen=True)
class Snapshot:
    """Every reading the cycle acts on, taken once at the start of the cycle."""

    ts: datetime
    monotonic_s: float
    site_import_kw: float | None
    devices: Mapping[str, DeviceView]


@dataclass(frozen=True)
class Command:
    """A setpoint to write: `value` in the point's unit; `reason` says which controller."""

    device_id: str
    point: str
    value: float
    reason: str


class TargetSource(StrEnum):
    """Why the site import is capped: the site's own limit, a DR event, the recovery ramp
    after one."""

    SITE_LIMIT = "site_limit"
    EVENT = "event"
    RECOVERY = "recovery"


@dataclass(frozen=True)
class Target:
    """The site import the closed loop must stay at or under (kW), and why."""

    import_max_kw: float
    source: TargetSource
    event_id: str | None = None  # the event's, when `source` is EVENT
    # End of the event the target belongs to: energy-limited devices (the battery) spread
    # what they have left over the time to it.
    until: datetime | None = None
    # An export-cap event's ceiling on export (kW ≥ 0), under the site's `limits.export_kw`.
    export_max_kw: float | None = None
    # An import target's floor: the site import at or above this (kW, ≤ import_max_kw), met
    # within the devices' limits (charging, giving back shed load). None: no floor.
    import_min_kw: float | None = None

    @property
    def label(self) -> str:
        """The source as logs name it: "site_limit", "recovery" or "event:<id>"."""
        if self.source is TargetSource.EVENT:
            return f"event:{self.event_id}"
        return self.source.value


@dataclass(frozen=True)
class PlanStep:
    """The optimiser's plan for the current step: per device, planned power (kW, consumption
    positive) and, for zones, the planned temperature at the end of the step (degC)."""

    power_kw: Mapping[str, float] = field(default_factory=dict)
    zone_temp_c: Mapping[str, float] = field(default_factory=dict)
    site_import_kw: float | None = None


@dataclass
class CycleResult:
    """What one control cycle decided."""

    commands: list[Command]
    target: Target | None
    error_kw: float
    not_following: list[str] = field(default_factory=list)
    replan: bool = False
    # kW of the error left over once every usable device was at its limit this cycle
    # (> 0: the site had no flexibility left), and which devices were out of control.
    unmet_kw: float = 0.0
    left_out: tuple[str, ...] = ()
