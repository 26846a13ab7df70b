"""The driver registry, keyed by the driver type (a site device's `driver`).

Built in: "modbus" / "mqtt" (the generic drivers, any kind; a site device without `driver`
gets its profile's transport), one type per device kind ("battery", ..., run by the generic
driver as the profile's `transport` says), "constant_load" (devices/example_driver.py) and
"static" (devices/static_driver.py). A new driver registers itself with
`@register_driver("my_type", options=MyOptions)` on a factory; the registry validates a
device's `options` with that model and whether it needs a profile before the factory runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from devices.clock import Clock
from devices.driver import Driver
from devices.modbus_driver import ModbusDriver
from devices.mqtt_driver import MqttDriver
from devices.mqtt_hub import MqttHub
from devices.profile import Kind, ModbusProfile, MqttProfile, error_paths


class RegistryError(ValueError):
    """A device the registry cannot build; the message names the device and the field."""


@dataclass(frozen=True)
class DeviceSpec:
    """One device as the site file gives it.

    `type` is the driver type (registry key); `kind` the device kind, which a driver that
    runs no profile takes from here (None: the profile's kind, or `type` when it names a
    kind). `limits` are the site's per-point (min, max) bounds (the site file's `limits`);
    `options` carries settings only that driver type understands, validated by its options
    model.
    """

    id: str
    type: str
    profile: ModbusProfile | MqttProfile | None = None
    host: str | None = None
    port: int | None = None
    unit_id: int | None = None
    timeout_s: float = 1.0
    stale_after_s: float = 10.0
    limits: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    kind: Kind | None = None


@dataclass(frozen=True)
class DriverContext:
    """What every driver of one agent shares: the clock, the site id, the MQTT connection."""

    clock: Clock
    site: str = "site"
    mqtt_hub: MqttHub | None = None
    hold_mqtt_commands: bool = False  # replay with in-process simulators: see MqttDriver


DriverFactory = Callable[[DeviceSpec, DriverContext], Driver]


class NoOptions(BaseModel):
    """The options model of a driver that takes none: any key is an unknown option."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def profile_problems(self, profile: ModbusProfile | MqttProfile) -> list[str]:
        """Options that do not fit the device's profile, each `field: message`."""
        return []


class ProfileOptions(NoOptions):
    """Options of the generic (profile) drivers: `telemetry_period_s`, how often an MQTT
    device publishes (s; default its profile's, else learnt from its messages)."""

    telemetry_period_s: Annotated[float, Field(gt=0, le=3600)] | None = None

    def profile_problems(self, profile: ModbusProfile | MqttProfile) -> list[str]:
        if self.telemetry_period_s is not None and isinstance(profile, ModbusProfile):
            return ["telemetry_period_s: only an MQTT device has a telemetry period"]
        return []


@dataclass(frozen=True)
class DriverType:
    """A registered driver type: its factory and what a device of that type must give.

    `needs_profile`: a device must name a profile (else the kind comes from the site file's
    `type`); `options`: the pydantic model (extra="forbid") its `options` must validate
    against; `kinds`: the device kinds it can run (None: any); `transport`: the only profile
    transport it runs (None: any).
    """

    name: str
    factory: DriverFactory
    needs_profile: bool = True
    options: type[BaseModel] = NoOptions
    kinds: frozenset[Kind] | None = None
    transport: str | None = None

    def check(
        self, kind: Kind | None, profile: ModbusProfile | MqttProfile | None, options: Any
    ) -> list[str]:
        """Problems of a device of this type, each `field: message` relative to the device
        (`options.foo: Extra inputs are not permitted`); empty when it can be built."""
        problems: list[str] = []
        if profile is None and self.needs_profile:
            problems.append(f"profile: the {self.name} driver needs a profile")
        if self.kinds is not None and kind is not None and kind not in self.kinds:
            runs = ", ".join(sorted(self.kinds))
            problems.append(f"type: the {self.name} driver runs {runs} devices, not {kind}")
        if profile is not None and self.transport not in (None, profile.transport):
            problems.append(
                f"driver: the {self.name} driver cannot run profile {profile.name!r} "
                f"({profile.transport})"
            )
        try:
            valid = self.options.model_validate(options)
        except ValidationError as e:
            for loc, msg in error_paths(e):
                problems.append(f"options.{loc}: {msg}" if loc else f"options: {msg}")
        else:
            if profile is not None and isinstance(valid, NoOptions):
                problems.extend(f"options.{p}" for p in valid.profile_problems(profile))
        return problems


_TYPES: dict[str, DriverType] = {}
_PLUGINS = ("devices.example_driver", "devices.static_driver")


def register_driver(
    type_: str,
    *,
    needs_profile: bool = True,
    options: type[BaseModel] = NoOptions,
    kinds: Collection[Kind] | None = None,
    transport: str | None = None,
) -> Callable[[DriverFactory], DriverFactory]:
    """Decorator: register `factory(spec, ctx) -> Driver` under the driver type `type_`.

    `options` validates a device's `options` (unknown keys refused), `needs_profile=False`
    lets a device name no profile, `kinds` limits the device kinds it runs, `transport` the
    profiles it runs.
    """

    def deco(factory: DriverFactory) -> DriverFactory:
        known = _TYPES.get(type_)
        if known is not None and known.factory is not factory:
            raise RegistryError(f"driver type {type_!r} is registered twice")
        frozen = frozenset(kinds) if kinds is not None else None
        _TYPES[type_] = DriverType(type_, factory, needs_profile, options, frozen, transport)
        return factory

    return deco


def _load_plugins() -> None:
    for module in _PLUGINS:
        importlib.import_module(module)


def driver_types() -> list[str]:
    """Every registered type, sorted."""
    _load_plugins()
    return sorted(_TYPES)


def driver_type(type_: str) -> DriverType | None:
    """The registered driver type `type_`, or None when there is none."""
    _load_plugins()
    return _TYPES.get(type_)


def create_driver(spec: DeviceSpec, ctx: DriverContext) -> Driver:
    """Build the driver for `spec.type`; RegistryError names the device and what is wrong
    (unknown type, bad options, a missing profile, a kind the driver cannot run)."""
    t = driver_type(spec.type)
    if t is None:
        known = ", ".join(driver_types())
        raise RegistryError(f"devices.{spec.id}.type: unknown type {spec.type!r} (known: {known})")
    problems = t.check(spec_kind(spec), spec.profile, dict(spec.options))
    if problems:
        raise RegistryError("\n".join(f"devices.{spec.id}.{p}" for p in problems))
    return t.factory(spec, ctx)


def spec_kind(spec: DeviceSpec) -> Kind | None:
    """The device's kind: `spec.kind`, else `type` when it names a kind, else its profile's."""
    if spec.kind is not None:
        return spec.kind
    if spec.type in Kind.__members__:
        return Kind(spec.type)
    return spec.profile.kind if spec.profile is not None else None


def generic_driver(spec: DeviceSpec, ctx: DriverContext) -> Driver:
    """Run the spec's profile with the Modbus or the MQTT driver, as its transport says."""
    where = f"devices.{spec.id}"
    p = spec.profile
    if p is None:
        raise RegistryError(f"{where}.profile: a {spec.type} device needs a profile")
    kind = spec_kind(spec)
    if kind is not None and p.kind != kind:
        raise RegistryError(f"{where}.profile: {p.name} is a {p.kind} profile, not {kind}")
    options = ProfileOptions.model_validate(dict(spec.options))
    if isinstance(p, ModbusProfile):
        if spec.host is None or spec.port is None:
            raise RegistryError(f"{where}: a Modbus device needs host and port")
        return ModbusDriver(
            spec.id,
            p,
            host=spec.host,
            port=spec.port,
            clock=ctx.clock,
            unit_id=spec.unit_id,
            timeout_s=spec.timeout_s,
            limits=spec.limits,
        )
    if ctx.mqtt_hub is None:
        raise RegistryError(f"{where}: an MQTT device needs the agent's MQTT broker settings")
    return MqttDriver(
        spec.id,
        p,
        hub=ctx.mqtt_hub,
        clock=ctx.clock,
        site=ctx.site,
        stale_after_s=spec.stale_after_s,
        telemetry_period_s=options.telemetry_period_s,
        limits=spec.limits,
        hold_commands=ctx.hold_mqtt_commands,
    )


for _type in Kind.__members__:
    # the profile's kind must match: generic_driver
    register_driver(_type, options=ProfileOptions)(generic_driver)
register_driver("modbus", transport="modbus")(generic_driver)
register_driver("mqtt", transport="mqtt", options=ProfileOptions)(generic_driver)
