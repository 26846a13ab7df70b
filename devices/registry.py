"""The driver registry, keyed by the `type` string of a device in the site file.

Built in: one type per device kind ("battery", "ev_charger", "hvac", "meter", "pv",
"curtailable_load") run by the generic Modbus or MQTT driver as the profile's `transport`
says, "modbus" / "mqtt" for any kind, and "constant_load" (devices/example_driver.py). A new
driver registers itself with `@register_driver("my_type")` on a factory.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from devices.clock import Clock
from devices.driver import Driver
from devices.modbus_driver import ModbusDriver
from devices.mqtt_driver import MqttDriver
from devices.mqtt_hub import MqttHub
from devices.profile import Kind, ModbusProfile, MqttProfile


class RegistryError(ValueError):
    """A device the registry cannot build; the message names the device and the field."""


@dataclass(frozen=True)
class DeviceSpec:
    """One device as the site file gives it.

    `limits` are the site's per-point (min, max) bounds (see capabilities.*Limits.point_limits);
    `options` carries settings only a particular driver type understands.
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


@dataclass(frozen=True)
class DriverContext:
    """What every driver of one agent shares: the clock, the site id, the MQTT connection."""

    clock: Clock
    site: str = "site"
    mqtt_hub: MqttHub | None = None
    hold_mqtt_commands: bool = False  # replay with in-process simulators: see MqttDriver


DriverFactory = Callable[[DeviceSpec, DriverContext], Driver]

_FACTORIES: dict[str, DriverFactory] = {}
_PLUGINS = ("devices.example_driver",)


def register_driver(type_: str) -> Callable[[DriverFactory], DriverFactory]:
    """Decorator: register `factory(spec, ctx) -> Driver` under the site-file type `type_`."""

    def deco(factory: DriverFactory) -> DriverFactory:
        if type_ in _FACTORIES and _FACTORIES[type_] is not factory:
            raise RegistryError(f"driver type {type_!r} is registered twice")
        _FACTORIES[type_] = factory
        return factory

    return deco


def _load_plugins() -> None:
    for module in _PLUGINS:
        importlib.import_module(module)


def driver_types() -> list[str]:
    """Every registered type, sorted."""
    _load_plugins()
    return sorted(_FACTORIES)


def create_driver(spec: DeviceSpec, ctx: DriverContext) -> Driver:
    """Build the driver for `spec.type`; RegistryError names the device and what is wrong."""
    _load_plugins()
    factory = _FACTORIES.get(spec.type)
    if factory is None:
        known = ", ".join(sorted(_FACTORIES))
        raise RegistryError(f"devices.{spec.id}.type: unknown type {spec.type!r} (known: {known})")
    return factory(spec, ctx)


def generic_driver(spec: DeviceSpec, ctx: DriverContext) -> Driver:
    """Run the spec's profile with the Modbus or the MQTT driver, as its transport says."""
    where = f"devices.{spec.id}"
    p = spec.profile
    if p is None:
        raise RegistryError(f"{where}.profile: a {spec.type} device needs a profile")
    if spec.type in Kind.__members__ and p.kind != spec.type:
        raise RegistryError(f"{where}.profile: {p.name} is a {p.kind} profile, not {spec.type}")
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
        limits=spec.limits,
        hold_commands=ctx.hold_mqtt_commands,
    )


for _type in [*Kind.__members__, "modbus", "mqtt"]:
    register_driver(_type)(generic_driver)
