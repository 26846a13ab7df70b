"""Packaging (issue 16 point 6): the wheel, installed without extras, runs a site agent;
the commands that need an extra say in one line what to install.

The wheel is built from a copy of this checkout (no build isolation: offline) and installed
with `--no-deps` into a fresh venv. Its dependencies come from this venv's site-packages
seen through a folder of links that leaves out the replay and export extras' libraries
(matplotlib, amqtt, pyarrow), on PYTHONPATH: to that `vpp` they are not installed, and
neither is this checkout (the bundled profiles and sites come from the wheel's data files).
The import contract in pyproject.toml keeps the site agent's modules off those libraries.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
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
        if (
            LEFT_OUT.match(entry.name)
            or entry.suffix == ".pth"
            or entry.name.startswith("__editable__")
        ):
            continue
        (view / entry.name).symlink_to(entry)
    yield view


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel of this checkout installed; returns its bin/."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("vpp", "devices", "optimiser", "simulators", "building", "config"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # Without PYTHONPATH: pip would take this checkout on it for an installed vpp.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp), str(src)],
        check=True,
        timeout=300,
        env=env,
    )
    (wheel,) = tmp.glob("vpp-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", str(wheel)],
        check=True,
        timeout=300,
        env=env,
    )
    return venv / "bin"


def bare(
    bin_dir: Path, view: Path, *args: str | Path, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed `vpp ARGS`, its dependencies from `view` only."""
    return subprocess.run(
        [str(bin_dir / "vpp"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or bin_dir,
        env=_env(view),
    )


def _env(view: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(view), "COLUMNS": "200"}


def _one_line(r: subprocess.CompletedProcess[str], code: int, *names: str) -> None:
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: "), line
    for n in names:
        assert n in line, line


def _config(bin_dir: Path) -> Path:
    return bin_dir.parent / "share" / "vpp" / "config"


def test_the_install_lacks_the_extras_and_the_checkout(
    installed: Path, bare_site_packages: Path
) -> None:
    py = str(installed / "python")
    env = _env(bare_site_packages)
    for module in ("matplotlib", "amqtt", "pyarrow"):
        r = subprocess.run([py, "-c", f"import {module}"], env=env, capture_output=True)
        assert r.returncode != 0, module
    code = "import vpp, devices.profile as p; print(vpp.__file__); print(p.profile_dir())"
    r = subprocess.run(
        [py, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        cwd=installed,
    )
    assert r.returncode == 0, r.stderr
    where, profiles = r.stdout.split()
    assert Path(where).is_relative_to(installed.parent) and not Path(where).is_relative_to(ROOT)
    assert Path(profiles) == _config(installed) / "profiles"
    assert {p.name for p in Path(profiles).iterdir()} == {
        p.name for p in (ROOT / "config" / "profiles").iterdir()
    }


@pytest.mark.parametrize("command", ["replay", "demo"])
def test_replay_and_demo_say_what_to_install(
    installed: Path, bare_site_packages: Path, command: str
) -> None:
    args = (
        [command, _config(installed) / "scenarios" / SUMMER.name]
        if command == "replay"
        else [command]
    )
    r = bare(installed, bare_site_packages, *args)
    _one_line(r, 1, f"vpp {command}", "pip install 'vpp[replay]'", "matplotlib", "amqtt")


def test_check_and_csv_export_need_no_extra(
    installed: Path, bare_site_packages: Path, tmp_path: Path
) -> None:
    config = _config(installed)
    r = bare(installed, bare_site_packages, "check", config / "sites" / OFFICE.name,
             *sorted((config / "scenarios").glob("*.yaml")))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 1 + len(list(SUMMER.parent.glob("*.yaml")))
    store = tmp_path / "s.sqlite"
    st = Store(store)
    st.add_telemetry(datetime(2026, 7, 15, tzinfo=UTC), "meter", {"import_power_kw": 80.0})
    st.close()
    args = ("export", "--store", store, "--table", "energy", "--out", "-")
    r = bare(installed, bare_site_packages, *args)
    assert r.returncode == 0, r.stderr
    assert ",meter,import_power_kw,1.3333,80.0,0.0667" in r.stdout  # 1 min of 15 at 80 kW
    r = bare(installed, bare_site_packages, "export", "--store", store, "--format", "parquet")
    _one_line(r, 2, "--format parquet", "pip install 'vpp[export]'", "pyarrow")


def test_sim_and_run_without_extras(
    installed: Path, bare_site_packages: Path, fresh_mosquitto: Broker, tmp_path: Path
) -> None:
    url = fresh_mosquitto.url
    office = _config(installed) / "sites" / OFFICE.name
    sim = bare(
        installed,
        bare_site_packages,
        *("sim", office, "--any-port", "--json", "--duration-s", "1", "--broker", url),
    )
    assert sim.returncode == 0, sim.stderr
    served = json.loads(sim.stdout.strip().splitlines()[-1])
    assert served["site_id"] == "office-1" and len(served["devices"]) > 10

    agent = subprocess.Popen(
        [str(installed / "vpp"), "run", str(office), "--broker", url, "--data-dir", str(tmp_path)],
        env=_env(bare_site_packages),
        cwd=tmp_path,
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
