"""A site file → a simulated site: the devices it names, served where it says (or on ports
the OS gives), with the physics of each device's `sim:` block."""

from __future__ import annotations

from building.params import BaseLoadParams
from building.weather import Environment
from devices.clock import Clock
from devices.mqtt_connect import MqttSettings
from simulators.faults import Faults
from simulators.models import params_for
from simulators.site import Endpoint, SimDeviceSpec, SimulatedSite
from vpp.site import Device, DeviceConfig, Site
from vpp.site_model import base_load as site_base_load
from vpp.site_model import environment
from vpp.site_model import validated as _validate

__all__ = ["environment", "rebind", "sim_specs", "simulated_site"]


def sim_specs(site: Site, *, any_port: bool = False) -> list[SimDeviceSpec]:
    """One simulator spec per device; `any_port` lets the OS choose every Modbus port."""
    specs = []
    for i, d in enumerate(site.devices):
        if d.profile_or_none is None:
            continue  # its driver knows the device itself (e.g. static): nothing to serve
        where = f"{site.source}: devices[{i}]"
        params = _validate(params_for(d.kind), d.config.sim, f"{where}.sim")
        faults = _validate(Faults, d.config.faults, f"{where}.faults")
        specs.append(
            SimDeviceSpec(
                d.id,
                d.profile,
                params,
                host=d.config.host,
                port=0 if any_port else d.config.port,
                unit_id=d.config.unit_id,
                faults=faults,
            )
        )
    return specs


def simulated_site(
    site: Site,
    clock: Clock,
    *,
    broker: tuple[str, int] | MqttSettings | None = None,
    any_port: bool = False,
    env: Environment | None = None,
    base_load: BaseLoadParams | None = None,
    seed: int | None = None,
    announce_mqtt: bool = False,
    telemetry_period_s: float | None = None,
) -> SimulatedSite:
    """Build (not start) the simulated site of a site file."""
    base = base_load or site_base_load(site)
    return SimulatedSite(
        clock,
        sim_specs(site, any_port=any_port),
        env or environment(site),
        site_id=site.id,
        broker=broker,
        step_s=site.config.sim.step_s,
        base_load=base,
        seed=site.config.sim.seed if seed is None else seed,
        telemetry_period_s=telemetry_period_s or site.config.periods.telemetry_s,
        announce_mqtt=announce_mqtt,
    )


def rebind(site: Site, endpoints: list[Endpoint]) -> Site:
    """The same site with each device's host and port set to where the simulator serves it."""
    where = {e.id: e for e in endpoints}
    devices = []
    for d in site.devices:
        e = where.get(d.id)
        cfg: DeviceConfig = d.config
        if e is not None and e.transport == "modbus":
            cfg = cfg.model_copy(update={"host": e.host, "port": e.port})
        devices.append(Device(config=cfg, profile=d.profile_or_none))
    config = site.config.model_copy(update={"devices": [d.config for d in devices]})
    return Site(config=config, devices=devices, source=site.source)
