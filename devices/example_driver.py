"""An example driver to copy: a curtailable load with no meter and no bus.

Think of a lighting circuit behind a contactor the agent cannot read: it reports a nominal
power from the site file, and "shedding" it is trusted to save that power. To add a driver:
copy this file, change the type string, the class and the options model, and add the module
to `devices.registry._PLUGINS` (or import it from your own plugin package).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from devices.driver import PointError, Reading, WriteResult
from devices.health import Health
from devices.profile import Kind
from devices.registry import DeviceSpec, DriverContext, register_driver


class ConstantLoadDriver:
    """A load of `nominal_kw` (kW, consumption positive) that reads 0 kW while shed."""

    def __init__(self, device_id: str, nominal_kw: float, ctx: DriverContext) -> None:
        self._id = device_id
        self._nominal_kw = nominal_kw
        self._clock = ctx.clock  # always the injected clock, never datetime.now()
        self._shed = False
        self._health = Health.starting(ctx.clock.now())

    # The Driver protocol: id, kind, profile, health, start, close, read, write.
    @property
    def id(self) -> str:
        return self._id

    @property
    def kind(self) -> Kind:
        return Kind.curtailable_load  # the capabilities the agent may use

    @property
    def profile(self) -> None:
        return None  # no register map: this driver knows its device itself

    @property
    def health(self) -> Health:
        return self._health

    async def start(self) -> None:
        """Open the transport here; never raise when the device is down."""

    async def close(self) -> None:
        """Release the transport here; must be safe to call twice."""

    async def read(self) -> Reading:
        # Real drivers talk to the device here and raise DeviceError on any trouble;
        # the Poller turns that into health, backoff and one log line.
        if self._health.state != "online":
            self._health = Health.online(self._clock.now())
        values = {"power_kw": 0.0 if self._shed else self._nominal_kw, "shed": float(self._shed)}
        return Reading(self._id, self._clock.now(), self._clock.monotonic(), values)

    async def write(self, point: str, value: float) -> WriteResult:
        # Only canonical points of the kind are writable; refuse anything else by name.
        if point != "shed":
            raise PointError(f"{self._id}: {point} is not writable (only shed)")
        self._shed = bool(value)
        written = 1.0 if self._shed else 0.0
        return WriteResult(point, float(value), written, clamped=False, verified=True)


class ConstantLoadOptions(BaseModel):
    """`options` of a constant_load device; unknown keys are refused (extra="forbid")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nominal_kw: Annotated[float, Field(ge=0)]  # kW drawn while not shed


@register_driver(
    "constant_load",
    needs_profile=False,  # it knows its device itself
    options=ConstantLoadOptions,  # the registry refuses bad options before this runs
    kinds=[Kind.curtailable_load],
)
def constant_load(spec: DeviceSpec, ctx: DriverContext) -> ConstantLoadDriver:
    """Site file: `{id: lights, type: curtailable_load, driver: constant_load,
    options: {nominal_kw: 12}}`."""
    options = ConstantLoadOptions.model_validate(spec.options)
    return ConstantLoadDriver(spec.id, options.nominal_kw, ctx)
