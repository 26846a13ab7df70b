"""An example driver to copy: a curtailable load with no meter and no bus.

Think of a lighting circuit behind a contactor the agent cannot read: it reports a nominal
power from the site file, and "shedding" it is trusted to save that power. To add a driver:
copy this file, change the type string and the class, and add the module to
`devices.registry._PLUGINS` (or import it from your own plugin package).
"""

from __future__ import annotations

from devices.driver import PointError, Reading, WriteResult
from devices.health import Health
from devices.profile import Kind
from devices.registry import DeviceSpec, DriverContext, RegistryError, register_driver


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


@register_driver("constant_load")
def constant_load(spec: DeviceSpec, ctx: DriverContext) -> ConstantLoadDriver:
    """Site file: `{id: lights, type: constant_load, options: {nominal_kw: 12}}`."""
    nominal = spec.options.get("nominal_kw")
    if not isinstance(nominal, int | float) or nominal < 0:
        raise RegistryError(f"devices.{spec.id}.options.nominal_kw: a number ≥ 0 is required")
    return ConstantLoadDriver(spec.id, float(nominal), ctx)
