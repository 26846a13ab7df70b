"""Builds one driver per device of the site file through the driver registry (keyed by the
device's `driver`, default its profile's transport); MQTT devices share one connection (an
MqttHub the agent runs). The site's devices as the agent sees them (drivers, poller,
snapshots) are `SiteDevices`."""

from __future__ import annotations

from devices.clock import Clock
from devices.driver import Driver
from devices.mqtt_hub import MqttHub
from devices.poller import Poller
from devices.profile import MqttProfile
from devices.registry import DeviceSpec, DriverContext, create_driver
from vpp.broker import connection, devices_client_id
from vpp.control.types import DeviceView, Snapshot
from vpp.kinds import ReportRole, plugin_for
from vpp.site import BrokerConfig, Site


def mqtt_hub_for(site: Site, clock: Clock, broker: BrokerConfig, client_id: str) -> MqttHub | None:
    """The shared MQTT connection for the site's MQTT devices (None when it has none)."""
    if not any(isinstance(d.profile_or_none, MqttProfile) for d in site.devices):
        return None
    return MqttHub(connection(broker, devices_client_id(client_id)), clock=clock)


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


class SiteDevices:
    """The site's devices as the agent reads them: one driver each, the MQTT hub they share
    (None without MQTT devices), the poller that reads them on their periods, and the
    snapshot every consumer takes of them."""

    def __init__(self, site: Site, clock: Clock, hub: MqttHub | None) -> None:
        self.site = site
        self.clock = clock
        self.hub = hub
        self.drivers: dict[str, Driver] = build_drivers(site, clock, hub)
        periods = site.config.periods
        self.poller = Poller(
            self.drivers.values(),
            clock=clock,
            period_s=periods.poll_s,
            # Polls on the control cycle's instants: a 60-s group spread over its own phases
            # made two thirds of a replay's clock leaps wake a single poll (3x the leaps, 5-7 %
            # more CPU); live, one wake-up per cycle instead of three.
            stagger_slot_s=periods.control_s,
            # Every device once at start: the first plan needs them all, and a 60-s device
            # on a late phase kept it waiting up to 55 s.
            read_at_start=True,
            periods={
                d.id: d.config.poll_s
                for d in site.devices
                if d.config.poll_s and d.id in self.drivers
            },
            # Readings outside a device's rating and direction are implausible.
            bounds={
                d.id: b
                for d in site.devices
                if d.id in self.drivers and (b := plugin_for(d.kind).reading_bounds(d))
            },
        )
        self._meter = next(
            (d.id for d in site.devices if plugin_for(d.kind).report_role is ReportRole.meter), None
        )
        self._snapshot: tuple[tuple[float, int], Snapshot] | None = None

    def watchdog_s(self, device_id: str) -> float:
        """The device's own fail-safe timeout (s), as it reports it; 60 s if it does not."""
        r = self.poller.latest(device_id)
        if r is not None and "watchdog_s" in r.values:
            return float(r.values["watchdog_s"])
        return 60.0

    def snapshot(self) -> Snapshot:
        """Every device's last reading and health, taken at once.

        Looks at one instant with no reading or health change between them share one
        snapshot (the control cycle's and the telemetry's, every 5 s)."""
        key = (self.clock.monotonic(), self.poller.changes)
        if self._snapshot is not None and self._snapshot[0] == key:
            return self._snapshot[1]
        snap = self._take_snapshot()
        self._snapshot = (key, snap)
        return snap

    def _take_snapshot(self) -> Snapshot:
        views: dict[str, DeviceView] = {}
        for d in self.site.devices:
            if d.id not in self.drivers:
                views[d.id] = DeviceView(d.id, False, {}, None, "no driver")
                continue
            r = self.poller.latest(d.id)
            h = self.poller.health(d.id)
            views[d.id] = DeviceView(
                d.id,
                h.usable and r is not None,
                r.values if r else {},  # a reading is never changed once made
                r.ts if r else None,
                h.reason,
                h,
            )
        meter = views.get(self._meter) if self._meter else None
        site_import = (
            meter.values.get("import_power_kw") if meter is not None and meter.usable else None
        )
        return Snapshot(self.clock.now(), self.clock.monotonic(), site_import, views)
