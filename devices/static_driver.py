"""The `static` driver: a meter that reports fixed readings from the site file.

For commissioning before the site meter is wired up, or a test site without one: the
agent gets a plausible, constant site import instead of an offline meter. It runs no
profile and writes nothing.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator

from devices.driver import PointError, Reading, WriteResult
from devices.health import Health
from devices.profile import REQUIRED_POINTS, Kind
from devices.registry import DeviceSpec, DriverContext, register_driver, spec_kind


class StaticOptions(BaseModel):
    """`options.values`: canonical point name → fixed engineering value (unit in the name,
    consumption positive), at least the meter's `import_power_kw`, `import_energy_kwh` and
    `export_energy_kwh`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    values: dict[str, float]

    @field_validator("values")
    @classmethod
    def _meter_points(cls, v: dict[str, float]) -> dict[str, float]:
        missing = sorted(REQUIRED_POINTS[Kind.meter] - v.keys())
        if missing:
            raise ValueError(f"the meter points {', '.join(missing)} are missing")
        return v


class StaticDriver:
    """A device of `kind` whose every read returns `values`; always online, never writable."""

    def __init__(self, device_id: str, kind: Kind, values: dict[str, float], ctx: DriverContext):
        self._id = device_id
        self._kind = kind
        self._values = dict(values)
        self._clock = ctx.clock
        self._health = Health.starting(ctx.clock.now())

    @property
    def id(self) -> str:
        return self._id

    @property
    def kind(self) -> Kind:
        return self._kind

    @property
    def profile(self) -> None:
        return None

    @property
    def health(self) -> Health:
        return self._health

    async def start(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to release."""

    async def read(self) -> Reading:
        if self._health.state != "online":
            self._health = Health.online(self._clock.now())
        return Reading(self._id, self._clock.now(), self._clock.monotonic(), dict(self._values))

    async def write(self, point: str, value: float) -> WriteResult:
        raise PointError(f"{self._id}.{point}: a static device takes no commands")


@register_driver("static", needs_profile=False, options=StaticOptions, kinds=[Kind.meter])
def static(spec: DeviceSpec, ctx: DriverContext) -> StaticDriver:
    """Site file: `{id: meter, type: meter, driver: static, options: {values:
    {import_power_kw: 300, import_energy_kwh: 0, export_energy_kwh: 0}}}`."""
    options = StaticOptions.model_validate(spec.options)
    return StaticDriver(spec.id, spec_kind(spec) or Kind.meter, options.values, ctx)
