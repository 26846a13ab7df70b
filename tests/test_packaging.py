"""Packaging (issue 16 point 6): a site agent installed without extras runs; the commands
that need an extra say in one line what to install.

"Without extras" is this venv's site-packages seen through a folder of links that leaves
out the replay and export extras' libraries (matplotlib, amqtt, pyarrow), run with `python
-S` so that folder is all the interpreter sees: to `vpp` they are not installed. (A fresh
venv with `pip install .` would take minutes; the import contract in pyproject.toml keeps
the site agent's modules off those libraries at every `make test`.)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest

from tests.conftest import Broker
from vpp.store.store import Store

ROOT = Path(__file__).resolve().parent.parent
OFFICE = ROOT / "config" / "sites" / "office.yaml"
SUMMER = ROOT / "config" / "scenarios" / "office-summer-day.yaml"
LEFT_OUT = re.compile(r"^(matplotlib|mpl_toolkits|amqtt|pyarrow)([-_.].*)?$", re.IGNORECASE)


@pytest.fixture(scope="module")
def bare_site_packages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This venv's packages without the extras' libraries (links, not copies)."""
    site = Path(sysconfig.get_paths()["purelib"])
    view = tmp_path_factory.mktemp("no-extras")
    for entry in site.iterdir():
        if LEFT_OUT.match(entry.name) or entry.suffix == ".pth":
            continue
        (view / entry.name).symlink_to(entry)
    yield view


def bare(view: Path, *args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -S -m vpp ARGS` seeing only `view` (and this checkout) as installed."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{view}", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-S", "-m", "vpp", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


def _one_line(r: subprocess.CompletedProcess[str], code: int, *names: str) -> None:
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: "), line
    for n in names:
        assert n in line, line


def test_the_view_lacks_the_extras(bare_site_packages: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{bare_site_packages}"}
    for module in ("matplotlib", "amqtt", "pyarrow"):
        r = subprocess.run(
            [sys.executable, "-S", "-c", f"import {module}"], env=env, capture_output=True
        )
        assert r.returncode != 0, module
    r = subprocess.run([sys.executable, "-S", "-c", "import pydantic, pymodbus, aiomqtt"], env=env)
    assert r.returncode == 0


@pytest.mark.parametrize("command", [("replay", str(SUMMER)), ("demo",)])
def test_replay_and_demo_say_what_to_install(
    bare_site_packages: Path, command: tuple[str, ...]
) -> None:
    r = bare(bare_site_packages, *command)
    _one_line(r, 1, f"vpp {command[0]}", "pip install 'vpp[replay]'", "matplotlib", "amqtt")


def test_check_and_csv_export_need_no_extra(bare_site_packages: Path, tmp_path: Path) -> None:
    r = bare(bare_site_packages, "check", OFFICE, SUMMER)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 2
    store = tmp_path / "s.sqlite"
    st = Store(store)
    st.add_telemetry(datetime(2026, 7, 15, tzinfo=UTC), "meter", {"import_power_kw": 80.0})
    st.close()
    r = bare(bare_site_packages, "export", "--store", store, "--table", "energy", "--out", "-")
    assert r.returncode == 0, r.stderr
    assert ",meter,import_power_kw,1.3333,80.0,0.0667" in r.stdout  # 1 min of 15 at 80 kW
    r = bare(bare_site_packages, "export", "--store", store, "--format", "parquet")
    _one_line(r, 2, "--format parquet", "pip install 'vpp[export]'", "pyarrow")


def test_sim_and_run_without_extras(
    bare_site_packages: Path, fresh_mosquitto: Broker, tmp_path: Path
) -> None:
    url = fresh_mosquitto.url
    sim = bare(
        bare_site_packages,
        *("sim", OFFICE, "--any-port", "--json", "--duration-s", "1", "--broker", url),
    )
    assert sim.returncode == 0, sim.stderr
    served = json.loads(sim.stdout.strip().splitlines()[-1])
    assert served["site_id"] == "office-1" and len(served["devices"]) > 10

    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{bare_site_packages}"}
    args = ["run", str(OFFICE), "--broker", url, "--data-dir", str(tmp_path)]
    agent = subprocess.Popen(
        [sys.executable, "-S", "-m", "vpp", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        status = asyncio.run(asyncio.wait_for(_status(fresh_mosquitto), 30))
        assert status["online"] is True
    finally:
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=30)
    assert agent.returncode == 0, err.decode()[-2000:]
    assert "ModuleNotFoundError" not in err.decode()
    assert (tmp_path / "office-1.sqlite").is_file()


async def _status(broker: Broker) -> dict[str, object]:
    async with aiomqtt.Client(broker.host, broker.port) as c:
        await c.subscribe("vpp/office-1/status", qos=1)
        async for m in c.messages:
            doc = dict(json.loads(bytes(m.payload)))
            if doc.get("online") is True:
                return doc
    raise AssertionError("the status topic closed")
