"""Shared fixtures: a real Mosquitto broker on a free loopback port; a 3-node NATS cluster."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from vpp.fleet.nats_cluster import NatsCluster


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the OS says is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def _wait_listening(port: int, deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"mosquitto did not listen on {port} within {deadline_s} s")


def start_mosquitto(workdir: Path, port: int | None = None, *, persistence: bool = False) -> Broker:
    """Start a Mosquitto process bound to 127.0.0.1 (anonymous allowed). With `persistence`,
    retained messages and sessions are saved in `workdir` when it stops and read again when
    it starts on the same port (a broker restart as in production)."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = port or free_port()
    conf = workdir / f"mosquitto-{port}.conf"
    # Started as root, Mosquitto runs as user `mosquitto`, which may not write to `workdir`
    # (pytest's tmp dirs are 0700): it then saves nothing ("Permission denied"). `user`
    # keeps it as whoever started it (ignored when that is not root).
    persist = (
        f"persistence true\npersistence_location {workdir}/\nuser {getpass.getuser()}\n"
        if persistence
        else ""
    )
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        + (persist or "persistence false\n")
        + "max_queued_messages 100000\nlog_type error\nset_tcp_nodelay true\n"
    )
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL)
    _wait_listening(port)
    return Broker("127.0.0.1", port, proc)


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A Mosquitto per test: no retained messages, sessions or client ids left by another
    test (a shared broker made tests depend on their order)."""
    broker = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.process.terminate()
    broker.process.wait(timeout=10)


@pytest.fixture
def fresh_mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto of this test's own: no retained messages or sessions from other tests."""
    broker = start_mosquitto(tmp_path)
    yield broker
    broker.process.terminate()
    broker.process.wait(timeout=10)


# Tests on the wall clock with processes of their own (`vpp run`, `vpp sim`, a VTN, a browser):
# under `pytest -n 2` (make test) they run one at a time, beside the virtual-clock tests,
# whose results do not depend on the machine's load. Entries are prefixes of test ids: a
# module or folder, or one test (`FILE::NAME`) of a module whose other tests run on the
# virtual clock. The group runs serially, so a test here that needs no wall clock costs the
# whole run its time.
WALL_CLOCK_MODULES = (
    "tests/grid/test_answer_priority.py",
    "tests/grid/test_client.py",
    "tests/grid/test_fanout_link.py",
    "tests/grid/test_solve_thread_live.py",
    "tests/oadr3/test_vpp_run_oadr3.py",
    "tests/fleet/test_nats_kill_live.py",
    "tests/openadr2b/",
    "tests/replay/test_progress.py",
    # Its four busy processes would slow the wall-clock tests running beside it; the
    # module's other replays are on the virtual clock (about 190 s at load 15).
    "tests/replay/test_replay_runs.py::test_a_loaded_machine_changes_nothing",
    "tests/simulators/test_mbpoll.py",
    "tests/test_cli_operator.py",
    "tests/test_cli_sim.py",
    "tests/test_clock.py",
    "tests/test_deploy.py",
    "tests/test_device_acl.py",
    "tests/test_flood_live.py",
    "tests/test_grid_link_reliability.py",
    "tests/test_mqtt_identity.py",
    "tests/test_nats_cluster.py",
    "tests/test_outbox_kill.py",
    "tests/test_packaging.py",
    "tests/test_vpp_run.py",
    "tests/web/",
)


# Modules whose tests share a costly module-scoped fixture and need no wall clock: a group
# of their own keeps them on one worker (ungrouped, a test taken by the other worker at the
# end would make the fixture again). A test of theirs in WALL_CLOCK_MODULES stays there.
SHARED_FIXTURE_MODULES = {
    "tests/replay/test_replay_runs.py": "replay_runs",  # two_runs: two 40-min replays, ~75 s
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        rel = Path(str(item.path)).relative_to(root).as_posix()
        test_id = rel + item.nodeid[item.nodeid.index("::") :] if "::" in item.nodeid else rel
        if test_id.startswith(WALL_CLOCK_MODULES):
            item.add_marker(pytest.mark.xdist_group("wall_clock"))
        elif rel in SHARED_FIXTURE_MODULES:
            item.add_marker(pytest.mark.xdist_group(SHARED_FIXTURE_MODULES[rel]))


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsCluster]:
    """A 3-node NATS cluster with MQTT and JetStream of this test's own (vpp.fleet.nats_cluster)."""
    from vpp.fleet.nats_cluster import nats_cluster

    with nats_cluster(tmp_path / "nats") as cluster:
        yield cluster
