"""A small simulated site and the real agent with its DrController on the virtual clock, for
tests that drive the grid contract end to end through a real Mosquitto.

The site (meter, one 100 kW battery, two 20 kW curtailable loads; Asia/Shanghai, so the
clock's 06:00 UTC start is 14:00 local, near the office peak of ~150 kW) can always deliver a
reduction of 80 kW for an hour, so a valid curtail event is answered `opt_in`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt

from building.params import BaseLoadParams
from devices.clock import Clock, VirtualClock
from simulators.site import SimulatedSite
from vpp.agent import Agent
from vpp.dr.controller import DrController
from vpp.dr.forecast import TwinForecast
from vpp.mqtt_link import message_key
from vpp.service import site_agent
from vpp.simsite import environment, rebind, simulated_site
from vpp.site import BrokerConfig, Site, parse_site

SITE_ID = "live-1"
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def night_timezone(now: datetime, local_hour: int = 3) -> str:
    """A fixed-offset IANA zone in which `now` (aware) is `local_hour` o'clock or just after:
    a live test on the wall clock then plans the same part of the day whenever it runs."""
    offset = (local_hour - now.astimezone(UTC).hour + 12) % 24 - 12  # hours east of UTC
    return "Etc/UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def small_site(timezone: str = "Asia/Shanghai") -> Site:
    """Meter, battery (100 kW, 200 kWh at 60 %) and two curtailable loads of 20 kW."""
    return parse_site(small_site_data(timezone), Path("live-site.yaml"))


def small_site_data(timezone: str = "Asia/Shanghai") -> dict[str, Any]:
    """The small site's site file, as data (what `small_site` parses)."""
    devices: list[dict[str, Any]] = [
        {"id": "meter", "type": "meter", "profile": "site-meter"},
        {
            "id": "bat1",
            "type": "battery",
            "profile": "sunspec-battery",
            "limits": {"power_setpoint_kw": [-100, 100]},
            "soc_reserve_pct": 20,
            "priority": 10,
            "sim": {
                "capacity_kwh": 200,
                "max_charge_kw": 100,
                "max_discharge_kw": 100,
                "initial_soc_pct": 60,
                "soc_min_pct": 5,
                "soc_max_pct": 95,
                "soc_reserve_pct": 20,
            },
        },
    ]
    for i in range(2):
        devices.append(
            {
                "id": f"load{i}",
                "type": "curtailable_load",
                "profile": "curtailable-load",
                "priority": 20,
                "sim": {"power_kw": 20},
            }
        )
    for i, d in enumerate(devices):
        d["port"] = 21000 + i  # replaced by the ports the simulator gets from the OS
    return {
        "site_id": SITE_ID,
        "name": "grid live test site",
        "timezone": timezone,
        "periods": {"poll_s": 5, "telemetry_s": 5, "plan_s": 900, "control_s": 5},
        "store": {"telemetry_resolution_s": 60},
        "limits": {"import_kw": 400.0, "export_kw": 0, "recovery_ramp_kw_per_min": 1000},
        "sim": {"step_s": 5, "seed": 3, "base_load": {"peak_kw": 150.0, "noise_kw": 0.5}},
        "devices": devices,
    }


@dataclass
class Watcher:
    """The grid side: publishes event messages, records everything the site sends."""

    client: aiomqtt.Client
    clock: Clock
    prefix: str = f"vpp/{SITE_ID}"
    responses: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    telemetry: list[dict[str, Any]] = field(default_factory=list)
    offers: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def listen(self) -> None:
        async for m in self.client.messages:
            if m.retain:
                continue
            msg = json.loads(bytes(m.payload))
            topic = str(m.topic)
            if topic.endswith("/responses"):
                self.responses.append(msg)
            elif topic.endswith("/reports"):
                self.reports.append(msg)
            elif topic.endswith("/telemetry"):
                self.telemetry.append(msg)
            elif topic.endswith("/offers"):
                self.offers.append(msg)
            self.changed.set()

    async def send(self, data: bytes) -> None:
        """Publish raw bytes on the site's events topic (QoS 1); the virtual clock holds
        until the agent has received them."""
        topic = f"{self.prefix}/events"
        self.clock.expect(message_key(topic, data))
        await self.client.publish(topic, data, qos=1)

    async def request_offer(self, data: bytes) -> None:
        """Publish raw bytes on the site's offer requests topic (QoS 1); the virtual clock
        holds until the agent has received them."""
        topic = f"{self.prefix}/offer_requests"
        self.clock.expect(message_key(topic, data))
        await self.client.publish(topic, data, qos=1)

    def statuses(self, event_id: str) -> list[str]:
        """Statuses answered so far for `event_id`, in arrival order."""
        return [r["status"] for r in self.responses if r.get("event_id") == event_id]

    async def until(self, check: Any, wall_s: float = 15.0) -> None:
        """Wait (wall time, bounded) until `check()` is true."""
        async with asyncio.timeout(wall_s):
            while not check():
                self.changed.clear()
                await self.changed.wait()


@asynccontextmanager
async def watcher(broker: BrokerConfig, clock: Clock) -> AsyncIterator[Watcher]:
    """A subscribed grid-side client, listening in the background."""
    client = aiomqtt.Client(
        broker.host, broker.port, identifier="grid-live-watcher", socket_options=NODELAY
    )
    async with contextlib.AsyncExitStack() as stack:
        # Time stands still while the broker answers (the simulators run meanwhile).
        async with clock.hold():
            await stack.enter_async_context(client)
            for sub in ("responses", "reports", "telemetry", "offers"):
                await client.subscribe(f"vpp/{SITE_ID}/{sub}", qos=1)
        w = Watcher(client, clock)
        task = asyncio.create_task(w.listen())
        try:
            yield w
        finally:
            task.cancel()
            with_suppress = asyncio.gather(task, return_exceptions=True)
            await with_suppress


def sim_for(site: Site, clock: Clock, broker: BrokerConfig) -> SimulatedSite:
    """The simulated devices of `site` (not started)."""
    return simulated_site(site, clock, broker=(broker.host, broker.port), any_port=True)


def agent_for(
    site: Site,
    sim: SimulatedSite,
    clock: Clock,
    broker: BrokerConfig,
    store: Path,
    *,
    offers: bool = False,
) -> tuple[Agent, DrController]:
    """The real agent and its DrController (optimiser strategy) on the started `sim`; with
    `offers`, its flexibility offers (off by default: about 60 solves a plan period that
    the tests of events do not need)."""
    live = rebind(site, sim.endpoints())
    base = BaseLoadParams.model_validate(live.config.sim.base_load)
    agent = site_agent(
        live,
        clock,
        broker=broker,
        store_path=store,
        client_id="grid-live-agent",
        forecast=TwinForecast(live, environment(live), base),
        offers=offers,
    )
    assert isinstance(agent.controller, DrController)
    return agent, agent.controller


async def advance_until(
    clock: VirtualClock, check: Callable[[], bool], virtual_s: float = 300.0, step_s: float = 1.0
) -> None:
    """Let simulated time run, `step_s` at a time, until `check()` is true: for what needs
    both simulated time (first readings, a plan) and a broker round trip (held meanwhile).
    AssertionError after `virtual_s` of simulated time."""
    for _ in range(int(virtual_s / step_s)):
        if check():
            return
        async with clock.hold():
            await asyncio.sleep(0.01)  # wall time: messages in flight arrive
        await clock.sleep(step_s)
    raise AssertionError(f"not true within {virtual_s} s of simulated time")
