"""A district on the virtual clock through a real Mosquitto: the aggregator, emulated sites
(vpp.fleet.emulator) and the grid's side (publishes district events, records what the
district sends)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt

from devices.clock import VirtualClock
from tests.conftest import Broker
from vpp.fleet.aggregator import Aggregator
from vpp.fleet.config import FleetConfig
from vpp.fleet.emulator import Emulator, SiteSpec
from vpp.mqtt_link import message_key
from vpp.site import BrokerConfig

DISTRICT = "district-1"
NOW = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)
FIVE = timedelta(minutes=5)


def specs(n: int = 5, **over: Any) -> list[SiteSpec]:
    """`n` sites of 40 kW at costs 1, 2, ... (200 kW baseline, sure of all of it)."""
    return [
        SiteSpec(f"b{i + 1}", capacity_kw=40.0, cost_per_kwh=float(i + 1), p90_share=1.0, **over)
        for i in range(n)
    ]


def fleet(broker: Broker, tmp: Path, sites: list[SiteSpec], **allocation: Any) -> FleetConfig:
    """The district's fleet file, as data."""
    return FleetConfig.model_validate(
        {
            "district_id": DISTRICT,
            "broker": {"host": broker.host, "port": broker.port},
            "sites": [{"site_id": s.site_id} for s in sites],
            # Least cost alone (no spread): these tests follow the cost order; the spread
            # is test_allocate's.
            "allocation": {"control_period_s": 60, "max_site_share": 1.0, **allocation},
            "store": tmp / "district.sqlite",
            "data_dir": tmp,
        }
    )


def curtail(event_id: str, kw: float, start: datetime, n: int = 4, mod: int = 0) -> bytes:
    """A district curtail event of `n` 5-min intervals of `kw` from `start`."""
    ivs = [
        {"start": (start + k * FIVE).isoformat(), "duration": "PT5M", "value": kw} for k in range(n)
    ]
    return json.dumps(
        {
            "v": 1,
            "event_id": event_id,
            "modification": mod,
            "signal": "curtail_kw",
            "intervals": ivs,
        }
    ).encode()


@dataclass
class Grid:
    """The grid operator's side of the district."""

    client: aiomqtt.Client
    clock: VirtualClock
    responses: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    telemetry: list[dict[str, Any]] = field(default_factory=list)
    offers: list[dict[str, Any]] = field(default_factory=list)

    async def listen(self) -> None:
        async for m in self.client.messages:
            msg = json.loads(bytes(m.payload)) if m.payload else {}
            leaf = str(m.topic).rsplit("/", 1)[-1]
            getattr(self, leaf).append(msg)

    async def send(self, data: bytes) -> None:
        """Publish on the district's events topic; the clock holds until the aggregator has it."""
        topic = f"vpp/{DISTRICT}/events"
        self.clock.expect(message_key(topic, data))
        await self.client.publish(topic, data, qos=1)

    def statuses(self, event_id: str | None) -> list[str]:
        return [r["status"] for r in self.responses if r.get("event_id") == event_id]


@asynccontextmanager
async def grid(broker: BrokerConfig, clock: VirtualClock) -> AsyncIterator[Grid]:
    """A subscribed grid-side client, listening in the background."""
    async with aiomqtt.Client(broker.host, broker.port, identifier="grid-of-district") as c:
        for leaf in ("responses", "reports", "telemetry", "offers"):
            await c.subscribe(f"vpp/{DISTRICT}/{leaf}", qos=1)
        g = Grid(c, clock)
        task = asyncio.create_task(g.listen())
        try:
            yield g
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def advance(
    clock: VirtualClock, check: Callable[[], bool], virtual_s: float = 3600.0, step_s: float = 5.0
) -> None:
    """Let simulated time run `step_s` at a time (holding it for a few wall milliseconds at
    each step, so messages in flight through the broker arrive) until `check()` is true."""
    for _ in range(int(virtual_s / step_s)):
        async with clock.hold():
            await asyncio.sleep(0.005)
        if check():
            return
        await clock.sleep(step_s)
    raise AssertionError(f"not true within {virtual_s} s of simulated time")


async def settle(clock: VirtualClock) -> None:
    """Hold time still for a few wall milliseconds: messages in flight arrive."""
    async with clock.hold():
        await asyncio.sleep(0.05)


@dataclass
class District:
    """A running district: its clock, emulated sites, the grid's side and the aggregator."""

    clock: VirtualClock
    emu: Emulator
    grid: Grid
    agg: Aggregator

    async def ask(self, event: bytes, event_id: str) -> None:
        """Send a district event and let time run until the district has answered it (a
        modification: answered again, so an earlier answer does not count)."""

        def answers() -> int:
            return sum(s in ("opt_in", "opt_out") for s in self.grid.statuses(event_id))

        before = answers()
        await self.grid.send(event)
        await advance(self.clock, lambda: answers() > before, virtual_s=60)

    def values(self, site: str) -> list[list[float]]:
        """Per event message the site received, its interval values."""
        return [[iv.value for iv in e.intervals] for e in self.emu.sites[site].received]


@asynccontextmanager
async def district(
    broker: Broker, tmp: Path, sites: list[SiteSpec], **allocation: Any
) -> AsyncIterator[District]:
    """The aggregator of `sites` (emulated) running, their offers in, the grid listening."""
    clock = VirtualClock(NOW)
    cfg = BrokerConfig(host=broker.host, port=broker.port)
    async with Emulator(sites, cfg, clock) as emu, grid(cfg, clock) as g:
        await emu.started()
        agg = Aggregator(fleet(broker, tmp, sites, **allocation), clock)
        stop = asyncio.Event()
        task = asyncio.create_task(agg.run(stop))
        try:
            await advance(clock, lambda: bool(g.offers))
            yield District(clock, emu, g, agg)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
