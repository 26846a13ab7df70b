"""Builds one driver per device of the site file through the driver registry (keyed by the
device's `driver`, default its profile's transport); MQTT devices share one connection (an
MqttHub the agent runs)."""

from __future__ import annotations

from devices.clock import Clock
from devices.driver import Driver
from devices.mqtt_hub import MqttHub, MqttSettings
from devices.profile import MqttProfile
from devices.registry import DeviceSpec, DriverContext, create_driver
from vpp.site import BrokerConfig, Site


def mqtt_hub_for(site: Site, clock: Clock, broker: BrokerConfig, client_id: str) -> MqttHub | None:
    """The shared MQTT connection for the site's MQTT devices (None when it has none)."""
    if not any(isinstance(d.profile_or_none, MqttProfile) for d in site.devices):
        return None
    settings = MqttSettings(
        host=broker.host,
        port=broker.port,
        username=broker.username,
        password=broker.password(),
        tls=broker.tls,
        client_id=f"{client_id}-devices",
        keepalive_s=broker.keepalive_s,
    )
    return MqttHub(settings, clock=clock)


def build_drivers(
    site: Site, clock: Clock, hub: MqttHub | None, *, hold_mqtt_commands: bool = False
) -> dict[str, Driver]:
    """Drivers keyed by device id, in site-file order."""
    ctx = DriverContext(clock, site.id, hub, hold_mqtt_commands)
    drivers: dict[str, Driver] = {}
    for d in site.devices:
        spec = DeviceSpec(
            id=d.id,
            type=d.driver,
            kind=d.kind,
            profile=d.profile_or_none,
            host=d.config.host,
            port=d.config.port,
            unit_id=d.config.unit_id,
            timeout_s=d.config.timeout_s,
            # A device that publishes less often than it is polled must not look stale.
            stale_after_s=max(
                10.0,
                3 * site.config.periods.telemetry_s,
                1.5 * (d.config.poll_s or site.config.periods.poll_s),
            ),
            limits=d.config.limits,
            options=d.config.options,
        )
        drivers[d.id] = create_driver(spec, ctx)
    return drivers
