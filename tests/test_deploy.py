"""deploy/ (issue 16 point 6): the systemd unit passes `systemd-analyze verify`, and the
command line that the unit and the container file start is a working agent: run here (the
site file and store folder put where the test has them), it comes online on the broker and
stops with exit 0 on the signal the unit and the container stop it with.

Building and starting the container needs a Docker daemon, which this machine does not run:
that is a manual step in docs/operations.md ("Run as a service").
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest
import yaml

from tests.conftest import Broker

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "vpp-agent@.service"
CONTAINER = ROOT / "deploy" / "Containerfile"
OFFICE = ROOT / "config" / "sites" / "office.yaml"
VPP = Path(sys.executable).parent / "vpp"  # this venv's console script


def _unit_key(key: str) -> str:
    (value,) = re.findall(rf"^{key}=(.*)$", UNIT.read_text(), re.MULTILINE)
    return value.strip()


def unit_command(site_file: Path, data_dir: Path) -> list[str]:
    """The unit's ExecStart for instance `office`, with our paths for its fixed ones."""
    cmd = shlex.split(_unit_key("ExecStart").replace("%i", "office"))
    assert cmd[0] == "/opt/vpp/bin/vpp"
    subs = {"/etc/vpp/office.yaml": str(site_file), "/var/lib/vpp": str(data_dir)}
    return [str(VPP), *(subs.get(a, a) for a in cmd[1:])]


def container_command(site_file: Path, data_dir: Path) -> list[str]:
    """The container's ENTRYPOINT + CMD, with our paths for its fixed ones."""
    text = CONTAINER.read_text()
    entry = json.loads(re.findall(r"^ENTRYPOINT (\[.*\])$", text, re.MULTILINE)[0])
    cmd = json.loads(re.findall(r"^CMD (\[.*\])$", text, re.MULTILINE)[0])
    assert entry[0] == "vpp"
    subs = {"/etc/vpp/site.yaml": str(site_file), "/var/lib/vpp": str(data_dir)}
    return [str(VPP), *(subs.get(a, a) for a in [*entry[1:], *cmd])]


def test_the_unit_verifies(tmp_path: Path) -> None:
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze is part of this machine (systemd); see docs/operations.md"
    unit = tmp_path / "vpp-agent@office.service"
    # verify checks that ExecStart's program exists: point it at this venv's vpp.
    unit.write_text(UNIT.read_text().replace("/opt/vpp/bin/vpp", str(VPP)))
    r = subprocess.run([exe, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert unit.name not in r.stderr, r.stderr  # no warning about the unit (unknown keys...)


def test_the_container_copies_what_exists() -> None:
    text = CONTAINER.read_text()
    copied = [line.split()[1] for line in text.splitlines() if line.startswith("COPY ")]
    assert copied and all((ROOT / c).exists() for c in copied), copied
    assert "pip install --no-cache-dir ." in text  # no extras: the site agent only


@pytest.mark.parametrize("started_by", ["unit", "container"])
def test_the_service_command_runs_the_agent(
    started_by: str, fresh_mosquitto: Broker, tmp_path: Path
) -> None:
    site = yaml.safe_load(OFFICE.read_text())
    site["broker"].update(host=fresh_mosquitto.host, port=fresh_mosquitto.port)
    site_file = tmp_path / "office.yaml"
    site_file.write_text(yaml.safe_dump(site))
    data = tmp_path / "data"
    make = unit_command if started_by == "unit" else container_command
    cmd = make(site_file, data)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    agent = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert asyncio.run(asyncio.wait_for(_online(fresh_mosquitto), 30))
    finally:
        stop = _unit_key("KillSignal") if started_by == "unit" else "SIGTERM"
        agent.send_signal(getattr(signal, stop))
        _, err = agent.communicate(timeout=30)
    assert agent.returncode == 0, err.decode()[-2000:]
    assert (data / "office-1.sqlite").is_file()
    # --json-logs: every log line is a JSON object (the journal or `docker logs` keeps them).
    lines = [ln for ln in err.decode().splitlines() if ln.strip()]
    assert lines and all(json.loads(ln) for ln in lines)


async def _online(broker: Broker) -> bool:
    async with aiomqtt.Client(broker.host, broker.port) as c:
        await c.subscribe("vpp/office-1/status", qos=1)
        async for m in c.messages:
            if json.loads(bytes(m.payload)).get("online") is True:
                return True
    return False
