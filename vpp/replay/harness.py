"""Runs the real agent against the simulated site on the virtual clock, with a grid operator
that sends events at their times and records every grid message.

Everything talks over loopback: Modbus TCP to the simulators, MQTT through a broker (an
external one such as Mosquitto, or amqtt started in this process). The operator announces
each event on the clock before publishing it (`clock.expect`), so the agent receives it at
the instant it was sent, whatever the broker's latency: runs are deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt
import structlog

from building.params import BaseLoadParams
from building.weather import Environment
from devices.clock import VirtualClock
from devices.mqtt_connect import mqtt_client
from simulators.faults import Faults
from simulators.site import SimulatedSite
from vpp.agent import Agent
from vpp.broker import connection
from vpp.dr.forecast import PriceSource, TwinForecast
from vpp.mqtt_link import MqttLink, encode, message_key
from vpp.replay.broker import ExternalBroker, ReplayBroker
from vpp.service import site_agent
from vpp.simsite import environment, rebind, simulated_site
from vpp.site import BrokerConfig, Device, Site, Tariff

log = structlog.get_logger(__name__)

AFTER_END_S = 1e-6  # the run stops this long after its end (see `run`)
COMMIT_EVERY_S = 900.0  # the agent's store commits every 15 simulated minutes
RESTART_SETTLE_WALL_S = 0.3  # wall time after a broker restart for clients to see the drop


@dataclass(frozen=True)
class TimedEvent:
    """An event message (contract dict) and when the operator sends it."""

    send_at: datetime
    message: dict[str, Any]


@dataclass(frozen=True)
class TimedFault:
    """From `start` to `end`, `device` shows `faults`."""

    device: str
    start: datetime
    end: datetime
    faults: Faults


@dataclass
class RunSpec:
    """One replay run."""

    site: Site
    start: datetime
    duration_s: float
    store_path: Path
    events: list[TimedEvent] = field(default_factory=list)
    faults: list[TimedFault] = field(default_factory=list)
    strategy: str = "optimiser"
    seed: int = 0
    env: Environment | None = None
    base_load: BaseLoadParams | None = None
    tariff: Tariff | None = None
    prices: PriceSource | None = None
    sim_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    client_id: str = "vpp-replay"
    mqtt_telemetry_s: float | None = None
    broker_restarts: list[datetime] = field(default_factory=list)
    agent_kills: list[datetime] = field(default_factory=list)


@dataclass
class RunResult:
    """What a run left behind: the store, the grid messages, timings."""

    store_path: Path
    messages: list[dict[str, Any]]
    simulated_s: float
    wall_s: float
    site_import: list[tuple[datetime, float]]
    hold_timeouts: int = 0
    """Held work the virtual clock gave up on (0 unless a message was lost)."""
    lost: list[str] = field(default_factory=list)
    leaps: int = 0
    """How many times the virtual clock moved on (a measure of the run's work that does not
    depend on the machine's load: bench/replay.py reports it)."""


class Operator:
    """The grid side: sends events on time, records responses, reports and its own sends."""

    def __init__(self, clock: VirtualClock, broker: BrokerConfig, site_id: str) -> None:
        self.clock = clock
        self.broker = broker
        self.site_id = site_id
        prefix = f"{broker.prefix}/{site_id}"
        self.events_topic = f"{prefix}/events"
        self.watch = [f"{prefix}/responses", f"{prefix}/reports"]
        self.messages: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self._link_up: asyncio.Event | None = None
        self.reports: list[dict[str, Any]] = []

    def _record(self, direction: str, topic: str, payload: dict[str, Any]) -> None:
        self.messages.append(
            {"ts": self.clock.now().isoformat(), "dir": direction, "topic": topic, "msg": payload}
        )

    async def run(
        self, events: list[TimedEvent], ready: asyncio.Event, link_up: asyncio.Event | None = None
    ) -> None:
        """Send `events` on time and record what comes back; reconnects (after a broker
        restart) and sends what it had not yet sent. No event leaves before `link_up` is
        set (the agent's grid link subscribed, on its first connection only: after it, its
        session keeps what it misses)."""
        self._link_up = link_up
        pending = sorted(events, key=lambda e: e.send_at)
        announced: set[int] = set()
        node = 0  # on a clustered broker, the next node after each lost connection
        while True:
            client = mqtt_client(
                connection(self.broker).node(node),
                identifier=f"vpp-replay-operator-{self.site_id}",
                clean_session=False,  # what the site answers while we reconnect waits for us
            )
            try:
                async with contextlib.AsyncExitStack() as stack:
                    # Time stands still while the broker answers: under load the clock
                    # leapt minutes past the scenario's start with the simulators running
                    # and the agent not yet started.
                    async with self.clock.hold():
                        await stack.enter_async_context(client)
                        for t in self.watch:
                            await client.subscribe(t, qos=1)
                    ready.set()
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._listen(client))
                        tg.create_task(self._send(client, pending, announced))
                return
            except* aiomqtt.MqttError:
                if not ready.is_set():
                    raise
                node += 1
                await self.clock.sleep(1.0)

    def record_restart(self, n: int) -> None:
        """The harness restarted the broker (shown in the messages, for engineers)."""
        self._record("broker", "", {"broker_restart": n})

    def record_fault(self, fault: dict[str, Any]) -> None:
        """A broker fault the harness enacted (a cluster node down or back), for engineers."""
        self._record("broker", "", fault)

    def record_kill(self, n: int) -> None:
        """The harness killed the agent and started a new one on its store."""
        self._record("agent", "", {"agent_kill": n})

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for m in client.messages:
            try:
                payload = json.loads(bytes(m.payload))
            except ValueError:
                continue
            topic = str(m.topic)
            self._record("site->grid", topic, payload)
            (self.reports if topic.endswith("/reports") else self.responses).append(payload)

    async def _send(
        self, client: aiomqtt.Client, pending: list[TimedEvent], announced: set[int]
    ) -> None:
        """Send `pending` in order, removing each once the broker has it (a send cut by a
        restart is sent again after the reconnect, announced and recorded once)."""
        while pending:
            ev = pending[0]
            delay = (ev.send_at - self.clock.now()).total_seconds()
            if delay > 0:
                await self.clock.sleep(delay)
            if self._link_up is not None:
                await self._link_up.wait()  # late (in virtual time) rather than lost
                self._link_up = None
            data = encode(ev.message)
            if id(ev) not in announced:
                announced.add(id(ev))
                self.clock.expect(message_key(self.events_topic, data))
                self._record("grid->site", self.events_topic, ev.message)
            await client.publish(self.events_topic, data, qos=1)
            pending.pop(0)


def with_sim_params(site: Site, overrides: dict[str, dict[str, Any]]) -> Site:
    """The site with some devices' `sim:` blocks updated (e.g. a scenario's EV sessions)."""
    if not overrides:
        return site
    unknown = sorted(set(overrides) - {d.id for d in site.devices})
    if unknown:
        raise ValueError(f"sim_params: no such devices: {', '.join(unknown)}")
    devices = []
    for d in site.devices:
        cfg = d.config
        if d.id in overrides:
            cfg = cfg.model_copy(update={"sim": {**(cfg.sim or {}), **overrides[d.id]}})
        devices.append(Device(config=cfg, profile=d.profile_or_none))
    config = site.config.model_copy(update={"devices": [d.config for d in devices]})
    return Site(config=config, devices=devices, source=site.source)


async def faults_task(sim: Any, clock: VirtualClock, faults: list[TimedFault]) -> None:
    changes: list[tuple[datetime, str, Faults]] = []
    for f in faults:
        changes.append((f.start, f.device, f.faults))
        changes.append((f.end, f.device, Faults()))
    for at, device, fl in sorted(changes, key=lambda c: c[0]):
        delay = (at - clock.now()).total_seconds()
        if delay > 0:
            await clock.sleep(delay)
        log.info("fault_set", device_id=device, faults=fl.model_dump(exclude_defaults=True))
        await sim.set_fault(device, fl)


async def _restarts_task(
    broker: ReplayBroker, clock: VirtualClock, operator: Operator, times: list[datetime]
) -> None:
    for n, at in enumerate(sorted(times), start=1):
        delay = (at - clock.now()).total_seconds()
        if delay > 0:
            await clock.sleep(delay)
        operator.record_restart(n)
        log.warning("broker_restart", n=n, at=at.isoformat())
        # Simulated time stands still while the broker is away and every client notices
        # the dropped connection; the clients' reconnect back-offs then run on the clock.
        async with clock.hold():
            await broker.restart()
            await asyncio.sleep(RESTART_SETTLE_WALL_S)


class Running:
    """The agent the replay runs now, and its task (a kill replaces both)."""

    def __init__(self, agent: Agent, stop: asyncio.Event, tg: asyncio.TaskGroup) -> None:
        self.agent, self.stop, self.tg = agent, stop, tg
        self.task = tg.create_task(agent.run(stop), name="agent")

    async def kill(self, *, drop_link: bool = False) -> None:
        """What SIGKILL does, as far as one process can: the store keeps what a live agent
        would have committed (Store.abandon: in-memory telemetry windows are lost), the
        agent's tasks end without their clean stop (no offline status, no final flush).
        With `drop_link` its MQTT connection is cut first without a DISCONNECT, so the
        broker publishes its last will (offline), as for a killed process."""
        if drop_link and isinstance(self.agent.link, MqttLink):
            self.agent.link.abort()
        store = self.agent.store
        store.abandon()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        store.close()  # the agent's own close did it, unless it never got there

    def restart(self, new_agent: Callable[[], Agent]) -> None:
        """A new agent on the same store, as a supervisor would restart `vpp run`."""
        self.agent = new_agent()
        self.task = self.tg.create_task(self.agent.run(self.stop), name="agent")

    async def kill_and_restart(self, new_agent: Callable[[], Agent]) -> None:
        """`kill`, then `restart`."""
        await self.kill()
        self.restart(new_agent)


async def _kills_task(
    running: Running,
    new_agent: Callable[[], Agent],
    clock: VirtualClock,
    operator: Operator,
    times: list[datetime],
) -> None:
    for n, at in enumerate(sorted(times), start=1):
        delay = (at - clock.now()).total_seconds()
        if delay > 0:
            await clock.sleep(delay)
        operator.record_kill(n)
        log.warning("agent_kill", n=n, at=at.isoformat())
        await running.kill_and_restart(new_agent)


def simulated_for(
    spec: RunSpec, clock: VirtualClock, broker: BrokerConfig
) -> tuple[Site, Environment, SimulatedSite]:
    """The run's site (with its scenario's sim inputs), environment and simulated site (an
    async context: its simulators serve on loopback ports from the OS)."""
    site = with_sim_params(spec.site, spec.sim_params)
    env = spec.env or environment(site)
    sim = simulated_site(
        site,
        clock,
        broker=connection(broker),  # credentials and TLS too, for an external broker
        any_port=True,
        env=env,
        base_load=spec.base_load,
        seed=spec.seed,
        announce_mqtt=True,
        telemetry_period_s=spec.mqtt_telemetry_s,
    )
    return site, env, sim


def agent_factory(
    spec: RunSpec,
    live: Site,
    clock: VirtualClock,
    broker: BrokerConfig,
    env: Environment,
    base: BaseLoadParams,
    *,
    offers: bool = False,
) -> Callable[[], Agent]:
    """What makes the run's agent (again, after a kill): the agent a site runs (vpp run) on
    the simulators' endpoints (`live`), with the scenario's weather and prices as forecast."""

    def new_agent() -> Agent:
        agent = site_agent(
            live,
            clock,
            broker=broker,
            store_path=spec.store_path,
            strategy=spec.strategy,
            client_id=spec.client_id,
            forecast=TwinForecast(live, env, base, spec.tariff, prices=spec.prices),
            # No flexibility offers: about 60 solves a plan period that change nothing
            # a replay scores (an offer has its own models and acts on nothing). The fleet
            # replay asks for them (`offers`) or publishes stand-ins (vpp.replay.fleet_offers).
            offers=offers,
        )
        # A replay's store is an output, rewritten by the next run: one transaction per
        # 15 simulated minutes instead of one per command and per telemetry window.
        agent.store.begin_group_commit()
        return agent

    return new_agent


async def run(
    spec: RunSpec,
    broker: BrokerConfig | ReplayBroker,
    *,
    progress: Callable[[float, float], Awaitable[None] | None] | None = None,
) -> RunResult:
    """Run one replay to its end; returns where the results are. `broker` is the broker's
    settings, or a replay broker (vpp.replay.broker), which `spec.broker_restarts` needs."""
    replay_broker = ExternalBroker(broker) if isinstance(broker, BrokerConfig) else broker
    if spec.broker_restarts and not replay_broker.restartable:
        await replay_broker.restart()  # raises the one-line error naming broker_restart_at
    broker = replay_broker.config
    clock = VirtualClock(spec.start)
    site, env, sim = simulated_for(spec, clock, broker)
    wall0 = time.perf_counter()
    operator = Operator(clock, broker, site.id)
    site_import: list[tuple[datetime, float]] = []
    async with sim:
        live = rebind(site, sim.endpoints())
        base = spec.base_load or BaseLoadParams.model_validate(site.config.sim.base_load)

        new_agent = agent_factory(spec, live, clock, broker, env, base)

        stop = asyncio.Event()
        ready = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            # No event leaves before the agent's grid link has subscribed: on a small site the
            # clock leapt past the first one's sending before it had, and the event was lost.
            first = new_agent()
            link_up = first.link.connected if isinstance(first.link, MqttLink) else None
            op = tg.create_task(operator.run(spec.events, ready, link_up))
            await ready.wait()
            current = Running(first, stop, tg)
            fault_task = tg.create_task(faults_task(sim, clock, spec.faults))
            restart_task = tg.create_task(
                _restarts_task(replay_broker, clock, operator, spec.broker_restarts)
            )
            kill_task = tg.create_task(
                _kills_task(current, new_agent, clock, operator, spec.agent_kills)
            )
            step = 60.0
            t = 0.0
            while t < spec.duration_s:
                t = min(spec.duration_s, t + step)
                await clock.sleep_until(t)
                site_import.append((clock.now(), sim.meter_kw()))
                if t % COMMIT_EVERY_S == 0:
                    current.agent.store.commit()
                if progress is not None:
                    r = progress(t, spec.duration_s)
                    if r is not None:
                        await r
            # Stop once every task has finished its work at the last instant (a control
            # cycle's writes, telemetry): the clock leaps past it only when the loop is
            # quiet. Stopping at once would cut that work short at a point that depends on
            # how many loop iterations it takes, not on virtual time.
            await clock.sleep_until(spec.duration_s + AFTER_END_S)
            stop.set()
            kill_task.cancel()
            await current.task
            fault_task.cancel()
            restart_task.cancel()
            op.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await op
    log.info(
        "replay_clock",
        leaps=clock.leaps,
        hold_timeouts=clock.hold_timeouts,
        hold_waits=clock.hold_waits,
        hold_wait_s=round(clock.hold_wait_s, 3),
        lost=clock.lost,
    )
    return RunResult(
        spec.store_path,
        operator.messages,
        spec.duration_s,
        time.perf_counter() - wall0,
        site_import,
        clock.hold_timeouts,
        clock.lost,
        clock.leaps,
    )
