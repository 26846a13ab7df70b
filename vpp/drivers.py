"""Builds one driver per device of the site file (the registry picks the class by `type`)."""

from __future__ import annotations

import structlog

from devices.clock import Clock
from devices.driver import Driver
from devices.modbus_driver import ModbusDriver
from devices.profile import ModbusProfile
from vpp.site import BrokerConfig, Site

log = structlog.get_logger(__name__)


def build_drivers(site: Site, clock: Clock, broker: BrokerConfig) -> dict[str, Driver]:
    """Drivers keyed by device id, in site-file order."""
    drivers: dict[str, Driver] = {}
    for d in site.devices:
        if isinstance(d.profile, ModbusProfile):
            drivers[d.id] = ModbusDriver(
                d.id,
                d.profile,
                host=d.config.host,
                port=d.config.port,
                clock=clock,
                unit_id=d.config.unit_id,
                timeout_s=d.config.timeout_s,
                limits=d.config.limits,
            )
        else:
            log.warning("driver_missing", device_id=d.id, transport=d.profile.transport)
    return drivers
