"""A simulated site: several devices on loopback servers and one physics task on the clock.

async with SimulatedSite(clock, [SimDeviceSpec("bat1", profile, BatteryParams())]) as site:
    site.endpoints()            # where each device listens
    site.set_fault("bat1", Faults(offline=True))
    site.meter_kw()             # site import power, kW (consumption positive)
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from pydantic import BaseModel

from building.params import (
    BaseLoadParams,
    MeterParams,
)
from building.weather import Environment
from devices.clock import Clock
from devices.mqtt_connect import MqttSettings
from devices.profile import Kind, ModbusProfile, MqttProfile
from simulators.device import ServedDevice
from simulators.faults import Faults
from simulators.loads import BaseLoad, MeterSim
from simulators.modbus_server import ModbusDeviceServer
from simulators.model import DeviceModel
from simulators.models import BuildContext, model_spec
from simulators.mqtt_server import MqttDeviceServer
from simulators.registers import RegisterStore


@dataclass(frozen=True)
class SimDeviceSpec:
    """One device to simulate: its profile (how it is served), physics `params` (the kind's
    model from `PARAMS`; None = defaults), where it listens (Modbus: host and port, 0 = any
    free port; unit_id None = the profile's), and faults from the start."""

    id: str
    profile: ModbusProfile | MqttProfile
    params: BaseModel | None = None
    host: str = "127.0.0.1"
    port: int = 0
    unit_id: int | None = None
    faults: Faults | None = None


class Endpoint(NamedTuple):
    """Where a simulated device is served (MQTT: the broker's host and port; no unit id)."""

    id: str
    kind: Kind
    transport: Literal["modbus", "mqtt"]
    host: str
    port: int
    unit_id: int | None
    profile: str


def build_model(
    kind: Kind,
    params: BaseModel | None,
    env: Environment,
    start: datetime,
    total_kw: Callable[[], float] | None = None,
) -> DeviceModel:
    """The physics model of a kind (`params` checked against its registered parameters)."""
    spec = model_spec(kind)
    p = params if params is not None else spec.params()
    if not isinstance(p, spec.params):
        raise TypeError(f"a {kind} device needs {spec.params.__name__}, not {type(p).__name__}")
    return spec.build(p, BuildContext(env, start, total_kw or (lambda: 0.0)))


class SimulatedSite:
    """Devices, their servers and the physics task, all on `clock`.

    Every `step_s` of clock time each device steps over the interval that just ended, then
    the meters sum the base load and every device's power (kW, consumption positive). The
    only randomness (base-load noise) comes from `seed`, so a run is reproducible.
    MQTT devices need `broker` = (host, port); `announce_mqtt` makes them announce each
    telemetry message and ack to the clock (see `simulators.mqtt_server`).
    """

    def __init__(
        self,
        clock: Clock,
        devices: list[SimDeviceSpec],
        environment: Environment | None = None,
        site_id: str = "site",
        broker: tuple[str, int] | MqttSettings | None = None,
        step_s: float = 1.0,
        base_load: BaseLoadParams | None = None,
        seed: int = 0,
        telemetry_period_s: float = 5.0,
        announce_mqtt: bool = False,
    ) -> None:
        if step_s <= 0:
            raise ValueError("step_s must be positive")
        ids = [d.id for d in devices]
        if len(set(ids)) != len(ids):
            raise ValueError(f"device ids must be unique: {ids}")
        self.clock = clock
        self.specs = {d.id: d for d in devices}
        self.env = environment or Environment()
        self.site_id = site_id
        # Where MQTT devices connect; MqttSettings also carries credentials and TLS files.
        settings = MqttSettings(*broker) if isinstance(broker, tuple) else broker
        self.broker_settings = settings
        self.broker = (settings.host, settings.port) if settings else None
        self.step_s = step_s
        self.telemetry_period_s = telemetry_period_s
        self.announce_mqtt = announce_mqtt
        self.start = clock.now()
        self._t0 = clock.monotonic()
        self._stepped_s = 0.0  # physics done up to start + this
        self.base_load = BaseLoad(base_load, self.env, random.Random(seed)) if base_load else None
        self.devices: dict[str, ServedDevice] = {}
        for d in devices:
            model = build_model(d.profile.kind, d.params, self.env, self.start, self._total_kw)
            device = ServedDevice(d.id, model, clock, d.faults, before=self.catch_up)
            self.devices[d.id] = device
        self.site_meter = MeterSim(MeterParams(), self._total_kw)
        self._modbus: dict[str, ModbusDeviceServer] = {}  # by device id (shared per port)
        self._mqtt: dict[str, MqttDeviceServer] = {}
        self._task: asyncio.Task[None] | None = None
        self.steps = 0

    # -- physics -----------------------------------------------------------------------

    def _total_kw(self) -> float:
        total = self.base_load.power_kw if self.base_load else 0.0
        for d in self.devices.values():
            if d.model.kind is not Kind.meter:
                total += d.model.power_kw
        return total

    def step(self, dt_s: float, now: datetime, now_s: float | None = None) -> None:
        """Advance every device over [now, now + dt_s] (watchdogs checked at `now_s`, the
        step's start on the clock's monotonic scale), then the meters."""
        now_s = self.clock.monotonic() if now_s is None else now_s
        meters = []
        for d in self.devices.values():
            if d.model.kind is Kind.meter:
                meters.append(d.model)
                continue
            d.model.check_watchdog(now_s)
            d.model.step(dt_s, now)
        if self.base_load:
            self.base_load.step(dt_s, now)
        for m in meters:
            m.step(dt_s, now)
        self.site_meter.step(dt_s, now)
        self.steps += 1

    def catch_up(self) -> None:
        """Run every step that ended at or before the clock's present, so that whoever looks
        at time t sees the state at the last step boundary, whatever task woke first."""
        now_s = self.clock.monotonic()
        while self._stepped_s + self.step_s <= now_s - self._t0 + 1e-9:
            start = self.start + timedelta(seconds=self._stepped_s)
            self.step(self.step_s, start, self._t0 + self._stepped_s)
            self._stepped_s += self.step_s

    async def _physics(self) -> None:
        k = 0
        while True:
            k += 1
            await self.clock.sleep_until(self._t0 + k * self.step_s)
            self.catch_up()

    def meter_kw(self) -> float:
        """Site import power (kW, negative when exporting), average over the last step."""
        self.catch_up()
        return self.site_meter.power_kw

    def state(self) -> dict[str, dict[str, float]]:
        """True values of every device (faults such as `stuck` do not apply), plus `site`:
        import_power_kw and the energy counters of the site's own meter."""
        self.catch_up()
        out = {i: d.model.read() for i, d in self.devices.items()}
        out["site"] = self.site_meter.read()
        if self.base_load:
            out["site"]["base_load_kw"] = self.base_load.power_kw
        return out

    # -- servers -------------------------------------------------------------------------

    async def __aenter__(self) -> SimulatedSite:
        try:
            await self._start_servers()
        except BaseException:
            await self._stop_servers()
            raise
        self._task = asyncio.create_task(self._physics(), name=f"sim-physics-{self.site_id}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._stop_servers()

    async def _start_servers(self) -> None:
        shared: dict[tuple[str, int], ModbusDeviceServer] = {}
        for spec in self.specs.values():
            device = self.devices[spec.id]
            profile = spec.profile
            if isinstance(profile, MqttProfile):
                if self.broker is None:
                    raise ValueError(f"devices.{spec.id}: an MQTT device needs a broker")
                server = MqttDeviceServer(
                    self.clock,
                    device,
                    profile,
                    self.site_id,
                    *self.broker,
                    period_s=self.telemetry_period_s,
                    announce=self.announce_mqtt,
                    settings=self.broker_settings,
                )
                self._mqtt[spec.id] = server
                if not device.faults.offline:
                    await server.start()
                continue
            unit = spec.unit_id if spec.unit_id is not None else profile.unit_id
            store = RegisterStore(profile, device)
            key = (spec.host, spec.port)
            mb = shared.get(key) if spec.port else None
            if mb is None:
                mb = ModbusDeviceServer(self.clock, {}, spec.host, spec.port)
                if spec.port:
                    shared[key] = mb
            if unit in mb.stores:
                raise ValueError(f"devices.{spec.id}: unit id {unit} already served on {key}")
            mb.stores[unit] = store
            self._modbus[spec.id] = mb
        for mb in {id(s): s for s in self._modbus.values()}.values():
            # Offline from the start still takes its port, so it can come online there.
            await mb.start()
            if all(s.device.faults.offline for s in mb.stores.values()):
                await mb.stop()

    async def _stop_servers(self) -> None:
        for mq in self._mqtt.values():
            await mq.stop()
        for mb in {id(s): s for s in self._modbus.values()}.values():
            await mb.stop()

    def endpoints(self) -> list[Endpoint]:
        """Where each device is served (ports as bound, after entering the context)."""
        out = []
        for spec in self.specs.values():
            kind, name = spec.profile.kind, spec.profile.name
            if isinstance(spec.profile, MqttProfile):
                host, port = self.broker or ("", 0)
                out.append(Endpoint(spec.id, kind, "mqtt", host, port, None, name))
                continue
            mb = self._modbus[spec.id]
            unit = spec.unit_id if spec.unit_id is not None else spec.profile.unit_id
            out.append(Endpoint(spec.id, kind, "modbus", mb.host, mb.port, unit, name))
        return out

    def mqtt_device(self, device_id: str) -> MqttDeviceServer:
        """The MQTT side of an MQTT device (to crash it, or have it say it is offline)."""
        try:
            return self._mqtt[device_id]
        except KeyError:
            raise KeyError(f"no simulated MQTT device {device_id!r}") from None

    async def set_fault(self, device_id: str, faults: Faults) -> None:
        """Change a device's faults at run time (offline stops or restarts its server; a
        Modbus port shared by several unit ids goes offline as a whole)."""
        if device_id not in self.devices:
            raise KeyError(f"no simulated device {device_id!r}")
        self.devices[device_id].set_faults(faults)
        if device_id in self._mqtt:
            await self._mqtt[device_id].set_offline(faults.offline)
        else:
            await self._modbus[device_id].set_offline(faults.offline)
