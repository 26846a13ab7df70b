"""Runs a fleet scenario: the aggregator and one real site agent per building, each on its own
simulators (loopback Modbus/MQTT), all on ONE virtual clock through one broker, with the
grid's side (the site harness's Operator, under the district id) sending the district events.

The counterfactual runs in the same run on the same clock: each building a second time under
`SITE-cf`, not enrolled in the district (so it never gets an event), with the same faults but
not the agent kills. Every minute each building's import (and its counterfactual's) is read
off its simulated meter; the enrolled buildings' readings also go to the aggregator as their
metering operator's feed (`PREFIX/SITE/metering`), which goes on while an agent is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt
import structlog

from devices.clock import VirtualClock
from devices.mqtt_connect import mqtt_client
from vpp.broker import connection
from vpp.fleet.aggregator import Aggregator
from vpp.fleet.config import FleetConfig
from vpp.fleet.run import EventRun
from vpp.grid.messages import Telemetry
from vpp.replay.broker import NatsBroker, ReplayBroker
from vpp.replay.fleet_scenario import AgentKill, BrokerDown, FleetScenario
from vpp.replay.harness import (
    AFTER_END_S,
    COMMIT_EVERY_S,
    Operator,
    Running,
    RunSpec,
    TimedEvent,
    TimedFault,
    agent_factory,
    faults_task,
    simulated_for,
)
from vpp.replay.runner import fresh_store, spec_for
from vpp.simsite import rebind
from vpp.site import BrokerConfig

log = structlog.get_logger(__name__)

SAMPLE_S = 60.0
CF = "-cf"


@dataclass
class FleetResult:
    """What a fleet run left behind."""

    imports: dict[str, list[tuple[datetime, float]]]
    """Per site id (and `ID-cf` for its counterfactual): its import each minute (kW)."""
    district_messages: list[dict[str, Any]]
    """Grid ↔ district (the Operator's record)."""
    site_messages: list[dict[str, Any]]
    """District ↔ sites: site events, responses, reports."""
    runs: dict[str, EventRun]
    wall_s: float
    cpu_s: float
    leaps: int = 0
    hold_timeouts: int = 0
    lost: list[str] = field(default_factory=list)


def fleet_config(fs: FleetScenario, broker: BrokerConfig, out: Path) -> FleetConfig:
    """The district's fleet file for the replay: every building enrolled, store in `out`."""
    return FleetConfig.model_validate(
        {
            "district_id": fs.config.district_id,
            "broker": broker.model_dump(),
            "sites": [
                {"site_id": sc.site.id, "max_kw": s.max_kw}
                for sc, s in zip(fs.sites, fs.config.sites, strict=True)
            ],
            "allocation": fs.config.allocation.model_dump(),
            "store": out / "district.sqlite",
            "data_dir": out,
        }
    )


def _site_specs(fs: FleetScenario, out: Path) -> list[RunSpec]:
    """Each building's run, then each one's counterfactual."""
    specs = []
    for events in (True, False):
        for sc in fs.sites:
            sid = sc.site.id
            d = out / "sites" / (sid if events else sid + CF)
            spec = spec_for(
                sc, fresh_store(d, sc, fs.config.strategy), strategy=sc.strategy, events=events
            )
            spec.faults += [
                TimedFault(
                    f.device,
                    fs.at(f.from_),
                    fs.at(f.to) if f.to else fs.at(fs.duration),
                    f.faults(),
                )
                for f in fs.config.faults
                if f.site == sid
            ]
            specs.append(spec)
    return specs


class _Recorder(Operator):
    """The district ↔ sites messages (site events, responses, reports, offers), recorded as the
    Operator records its own; sends nothing."""

    def __init__(self, clock: VirtualClock, broker: BrokerConfig, fs: FleetScenario) -> None:
        super().__init__(clock, broker, f"{fs.config.district_id}-recorder")
        self.watch = [
            f"{broker.prefix}/{sc.site.id}/{leaf}"
            for sc in fs.sites
            for leaf in ("events", "responses", "reports", "offers")
        ]


class _Metering:
    """The buildings' meters as their metering operator sees them, apart from the agents: each
    enrolled building's import published once a minute on `PREFIX/SITE/metering` (the
    contract's telemetry shape, no devices), so the aggregator still sees what a building
    whose agent died draws."""

    def __init__(self, clock: VirtualClock, broker: BrokerConfig, district_id: str) -> None:
        self.clock = clock
        self.prefix = broker.prefix
        self.settings = connection(broker)
        self.district_id = district_id
        self.client: aiomqtt.Client | None = None

    async def run(self, ready: asyncio.Event) -> None:
        """Connect (again after a broker restart, to the next node of a cluster) until
        cancelled."""
        node = 0
        while True:
            settings = self.settings.node(node)
            try:
                async with contextlib.AsyncExitStack() as stack:
                    async with self.clock.hold():
                        self.client = await stack.enter_async_context(
                            mqtt_client(settings, identifier=f"{self.district_id}-metering")
                        )
                    ready.set()
                    async for _ in self.client.messages:  # none subscribed: ends on a drop
                        pass
            except aiomqtt.MqttError:
                node += 1
                await self.clock.sleep(1.0)
            finally:
                self.client = None

    async def publish(self, site_id: str, kw: float) -> None:
        """One reading (QoS 0: a lost one is a gap, as a meter's)."""
        if self.client is None:
            return
        t = Telemetry(ts=self.clock.now(), site_import_kw=round(kw, 3), devices={})
        with contextlib.suppress(aiomqtt.MqttError):
            async with self.clock.hold():
                await self.client.publish(f"{self.prefix}/{site_id}/metering", t.to_json())


async def _kill(
    running: Running, new_agent: Any, clock: VirtualClock, fs: FleetScenario, kill: AgentKill
) -> None:
    await clock.sleep_until((fs.at(kill.at) - fs.start).total_seconds())
    log.warning("agent_kill", site_id=kill.site)
    await running.kill(drop_link=True)
    if kill.restart_at is not None:
        await clock.sleep_until((fs.at(kill.restart_at) - fs.start).total_seconds())
        log.warning("agent_restart", site_id=kill.site)
        running.restart(new_agent)


def _node(broker: ReplayBroker, first: int) -> BrokerConfig:
    """A client's broker settings: on a NATS cluster, node `first` first (the others as its
    failover); else the one broker."""
    return broker.config_from(first) if isinstance(broker, NatsBroker) else broker.config


async def _node_down(
    broker: ReplayBroker, clock: VirtualClock, fs: FleetScenario, down: BrokerDown, op: Operator
) -> None:
    """Kill a node of the cluster at `down.at` (and start it again at `restart_at`), the
    clock held while the cluster re-elects its JetStream leaders (5-10 s wall): in that
    time simulated buildings and agents would run on while their broker cannot serve. Each
    step is recorded in the district's messages (for engineers)."""
    assert isinstance(broker, NatsBroker)  # checked before the run (replay_fleet)
    steps = [("broker_node_down", down.at, broker.kill_node)]
    if down.restart_at is not None:
        steps.append(("broker_node_restarted", down.restart_at, broker.restart_node))
    for what, at, act in steps:
        await clock.sleep_until((fs.at(at) - fs.start).total_seconds())
        wall0 = time.perf_counter()
        async with clock.hold():
            await act(down.node)
        held = round(time.perf_counter() - wall0, 1)
        log.warning(what, node=down.node, held_wall_s=held)
        op.record_fault({what: down.node, "held_wall_s": held})


async def run_fleet(fs: FleetScenario, out: Path, broker: ReplayBroker) -> FleetResult:
    """Run `fs` to its end on `broker` (results: FleetResult; stores under `out`)."""
    clock = VirtualClock(fs.start)
    specs = _site_specs(fs, out)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    imports: dict[str, list[tuple[datetime, float]]] = {s.site.id: [] for s in specs}
    ids = [sc.site.id for sc in fs.sites]
    operator = Operator(clock, _node(broker, 1), fs.config.district_id)
    recorder = _Recorder(clock, _node(broker, 2), fs)
    metering = _Metering(clock, _node(broker, 1), fs.config.district_id)
    events = [
        TimedEvent(e.send_at, e.event.model_dump(mode="json", exclude_none=True))
        for e in fs.events()
    ]
    async with contextlib.AsyncExitStack() as stack:
        sims = []
        for spec in specs:
            # On a cluster the buildings start on nodes 1 and 2 in turn, the aggregator on 0.
            own = _node(broker, 1 + ids.index(spec.site.id.removesuffix(CF)) % 2)
            site, env, sim = simulated_for(spec, clock, own)
            await stack.enter_async_context(sim)
            assert spec.base_load is not None
            live = rebind(site, sim.endpoints())
            # The enrolled agents offer (their optimiser's offers); the counterfactuals not.
            enrolled = not spec.site.id.endswith(CF)
            new = agent_factory(spec, live, clock, own, env, spec.base_load, offers=enrolled)
            sims.append((spec, sim, new))
        agg = Aggregator(
            fleet_config(fs, _node(broker, 0), out), clock, settlement=out / "settlement.csv"
        )
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            rec_ready, ready = asyncio.Event(), asyncio.Event()
            rec = tg.create_task(recorder.run([], rec_ready))
            await rec_ready.wait()
            meters_ready = asyncio.Event()
            meter_task = tg.create_task(metering.run(meters_ready))
            await meters_ready.wait()
            running = {spec.site.id: Running(new(), stop, tg) for spec, _, new in sims}
            factories = {spec.site.id: new for spec, _, new in sims}
            agg_task = tg.create_task(agg.run(stop), name="aggregator")
            op = tg.create_task(operator.run(events, ready, agg.up.connected))
            await ready.wait()
            side = [tg.create_task(faults_task(sim, clock, spec.faults)) for spec, sim, _ in sims]
            side += [
                tg.create_task(_kill(running[k.site], factories[k.site], clock, fs, k))
                for k in fs.config.agent_kills
            ]
            side += [
                tg.create_task(_node_down(broker, clock, fs, d, operator))
                for d in fs.config.broker_down
            ]
            total = fs.duration.total_seconds()
            t = 0.0
            while t < total:
                t = min(total, t + SAMPLE_S)
                await clock.sleep_until(t)
                for spec, sim, _ in sims:
                    kw = sim.meter_kw()
                    imports[spec.site.id].append((clock.now(), kw))
                    if not spec.site.id.endswith(CF):
                        await metering.publish(spec.site.id, kw)
                if t % COMMIT_EVERY_S == 0:
                    for r in running.values():
                        if not r.task.done():
                            r.agent.store.commit()
            await clock.sleep_until(total + AFTER_END_S)
            stop.set()
            for task in side:
                task.cancel()
            for r in running.values():
                if not r.task.cancelled():  # a killed agent that stayed down
                    await r.task
            await agg_task
            for task in (op, rec, meter_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    return FleetResult(
        imports=imports,
        district_messages=operator.messages,
        site_messages=recorder.messages,
        runs=dict(agg.events.runs),
        wall_s=time.perf_counter() - wall0,
        cpu_s=time.process_time() - cpu0,
        leaps=clock.leaps,
        hold_timeouts=clock.hold_timeouts,
        lost=list(clock.lost),
    )
