"""What the agent knows about one device kind, in one place: a `KindPlugin`.

The core (dispatcher, DR planning, forecasts, telemetry, reports, site checks) iterates the
registry (`vpp.kinds.registry`) and asks each device's plugin; it never names a kind. A
plugin is one module of this package that calls `register(...)` at import: see
docs/architecture.md "How to add a kind".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel

from building.weather import Environment
from devices.plausible import Bounds, power_bounds
from devices.profile import Kind
from optimiser import TimeGrid
from optimiser.inputs import Asset
from vpp.control.flex import Flex
from vpp.control.types import DeviceView
from vpp.site import Device, DeviceConfig


class Direction(StrEnum):
    """Which way a kind's power flows (consumption positive): what its readings may show."""

    consumes = "consumes"  # ≥ 0: loads, zones, one-way chargers
    produces = "produces"  # ≤ 0: PV
    both = "both"  # batteries, V2G chargers, meters


class ReportRole(StrEnum):
    """How a kind enters an event's report."""

    none = "none"  # not in the report (PV: not a knob)
    meter = "meter"  # the site's import comes from it
    device = "device"  # per-device power in the report's details
    zone = "zone"  # comfort (zone temperature against its band)


@dataclass(frozen=True)
class AssetCosts:
    """Planner settings that price a kind's flexibility (currency per kWh, hours)."""

    battery_cycle_cost: float
    load_shed_cost: float


@dataclass(frozen=True)
class PlanContext:
    """What an asset builder sees of a plan being made: its grid, the site's per-step
    forecasts and prices, and the planner's cost settings."""

    ts: datetime
    grid: TimeGrid
    import_price: Sequence[float]
    device_series: Mapping[str, Sequence[float]]
    costs: AssetCosts


@dataclass(frozen=True)
class DeviceSeries:
    """A device's own per-step forecast: `generation_kw` (≥ 0, subtracted from the site's
    load: PV) and/or `own_kw` (the kind's own series, e.g. a zone's internal gain in kW of
    heat or a load group's draw in kW), each at the planning steps' midpoints."""

    generation_kw: Sequence[float] | None = None
    own_kw: Sequence[float] | None = None


class KindPlugin:
    """Everything the agent knows about one kind. Subclasses override what applies."""

    kind: ClassVar[Kind]
    wire_kind: ClassVar[str]
    """The kind's name in telemetry (`kind` extension) and in the contract's kind fields."""
    params: ClassVar[type[BaseModel] | None] = None
    """The kind's building model (the device's `sim:` block; defaults when absent)."""
    telemetry_fields: ClassVar[Mapping[str, str]] = {"power_kw": "power_kw"}
    """Contract telemetry field ← canonical point name."""
    boolean_fields: ClassVar[frozenset[str]] = frozenset()
    """Telemetry fields that are booleans (the point ≥ 0.5)."""
    report_role: ClassVar[ReportRole] = ReportRole.none
    direction: ClassVar[Direction] = Direction.both
    """Which way the device's `power_kw` may read."""
    rating_point: ClassVar[str | None] = None
    """The kW point whose range (the site file's limits within the profile's) is the device's
    rating (a charger's power limit, a battery's setpoint)."""
    sections: ClassVar[Mapping[str, str]] = {}
    """Device sections of the site file that only this kind (and others that claim them too)
    may carry, each with the error another kind's device gets for it (e.g. `comfort`: "only
    hvac devices have a comfort band")."""

    def model(self, device: Device) -> BaseModel | None:
        """The device's building model (its `sim:` block validated, or the defaults)."""
        return self.params.model_validate(device.config.sim or {}) if self.params else None

    def adapter(self, device: Device) -> Flex | None:
        """The dispatch adapter of a controllable device (None: not a knob)."""
        return None

    def rating_kw(self, device: Device) -> float | None:
        """The device's rated power (kW, ≥ 0) from `rating_point`'s range; None: unknown."""
        if self.rating_point is None or device.profile_or_none is None:
            return None
        p = device.profile.points.get(self.rating_point)
        lo, hi = getattr(p, "min", None), getattr(p, "max", None)
        site = device.config.limits.get(self.rating_point)
        if site is not None:
            lo = site[0] if lo is None else max(lo, site[0])
            hi = site[1] if hi is None else min(hi, site[1])
        ends = [abs(v) for v in (lo, hi) if v is not None]
        return max(ends) if ends else None

    def reading_bounds(self, device: Device) -> Bounds:
        """The ranges the device's readings must stay in beyond any device's (the poller
        rejects others as implausible): `power_kw` within its rating and direction."""
        d = self.direction
        power = power_bounds(
            self.rating_kw(device),
            consumes=d is not Direction.produces,
            produces=d is not Direction.consumes,
        )
        return {} if power is None else {"power_kw": power}

    def assets(
        self,
        device: Device,
        view: DeviceView,
        model: Any,
        ctx: PlanContext,
        plan_input: object | None,
    ) -> list[Asset]:
        """The optimiser's assets for a usable device (`plan_input`: its adapter's
        `plan_input()`, taken on the control loop before the solve)."""
        return []

    def forecast(
        self, device: Device, model: Any, env: Environment, mids: list[datetime]
    ) -> DeviceSeries:
        """The device's own forecasts at `mids` (planning steps' midpoints)."""
        return DeviceSeries()

    def check(self, config: DeviceConfig) -> list[tuple[str, str]]:
        """Kind-specific site-file problems as (field, message)."""
        return []


@dataclass
class Registry:
    """One plugin per kind."""

    by_kind: dict[Kind, KindPlugin] = field(default_factory=dict)

    def add(self, plugin: KindPlugin) -> None:
        if plugin.kind in self.by_kind:
            raise ValueError(f"kind {plugin.kind} is registered twice")
        self.by_kind[plugin.kind] = plugin
