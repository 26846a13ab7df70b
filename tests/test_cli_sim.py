"""`vpp sim` and bad site files (issue 16): a site with MQTT devices and no broker gets the
embedded one (and `vpp run`'s site file finds it there); a broker given and absent, a bad
`--duration`, and two devices at one address are one line, exit 2. Real processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiomqtt

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
OFFICE = ROOT / "config" / "sites" / "office.yaml"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}


def vpp(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vpp", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=ENV,
    )


def one_line_error(r: subprocess.CompletedProcess[str], *names: str) -> str:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: ")
    for n in names:
        assert n in line, line
    return line


def office_copy(tmp_path: Path, old: str = "", new: str = "", *, broker_port: int) -> Path:
    """The bundled office with its broker on `broker_port` (a port the OS gave)."""
    text = OFFICE.read_text().replace("  port: 1883\n", f"  port: {broker_port}\n", 1)
    if old:
        assert old in text
        text = text.replace(old, new, 1)
    out = tmp_path / "office.yaml"
    out.write_text(text)
    return out


async def test_sim_without_a_broker_starts_the_embedded_one_where_the_site_file_says(
    tmp_path: Path,
) -> None:
    port = free_port()
    site = office_copy(tmp_path, broker_port=port)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vpp", "sim", str(site), "--any-port", "--json",
        "--duration", "PT60S",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=ENV,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        doc = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        assert doc["broker"] == {"host": "127.0.0.1", "port": port, "embedded": True}
        mqtt = {d["id"] for d in doc["devices"] if d["transport"] == "mqtt"}
        assert mqtt == {"ev7", "ev8"}
        # The MQTT chargers are served through it: their retained availability is there.
        seen: set[str] = set()
        async with aiomqtt.Client("127.0.0.1", port, identifier="test-sim-reader") as c:
            await c.subscribe("vpp/office-1/+/state", qos=1)
            async with asyncio.timeout(30):
                async for msg in c.messages:
                    seen.add(str(msg.topic).split("/")[2])
                    if seen >= mqtt:
                        break
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_sim_with_a_given_broker_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    site = office_copy(tmp_path, broker_port=free_port())
    r = vpp("sim", site, "--any-port", "--duration", "PT1S", "--broker", "mqtt://127.0.0.1:9")
    line = one_line_error(r, "--broker", "127.0.0.1:9", "MQTT devices")
    assert "Traceback" not in r.stdout and r.stdout == ""
    assert "embedded" not in line  # given a broker, it is not replaced by another


def test_sim_with_a_remote_site_broker_that_is_not_there_says_what_to_pass(
    tmp_path: Path,
) -> None:
    site = office_copy(tmp_path, "  host: 127.0.0.1\n", "  host: 127.0.0.2\n", broker_port=9)
    r = vpp("sim", site, "--any-port", "--duration", "PT1S")
    one_line_error(r, f"{site}: broker", "127.0.0.2:9", "--broker mqtt://HOST:PORT")


def test_sim_duration_is_iso_8601_and_duration_s_a_deprecated_alias(tmp_path: Path) -> None:
    site = office_copy(tmp_path, broker_port=free_port())
    one_line_error(vpp("sim", site, "--any-port", "--duration", "60"), "--duration", "ISO 8601")
    r = vpp("sim", site, "--any-port", "--json", "--duration-s", "0.5")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["site_id"] == "office-1"
    assert "warning: --duration-s is deprecated: use --duration" in r.stderr
    assert "--duration-s" not in vpp("sim", "-h").stdout  # documented: --duration only


def test_two_devices_at_one_address_are_one_line_in_sim_run_and_check(tmp_path: Path) -> None:
    # bat1 moved onto the meter's port; both have unit id 1.
    site = office_copy(tmp_path, "port: 15021", "port: 15020", broker_port=free_port())
    for command in (("sim", site, "--duration", "PT1S"), ("run", site, "--data-dir", tmp_path)):
        one_line_error(vpp(*command), f"{site}: devices[1]:", "port 15020", "unit_id 1", "meter")
    r = vpp("check", site)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"error: {site}: devices[1]: host 127.0.0.1, port 15020")


def test_a_modbus_port_taken_is_one_line_naming_the_device(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        site = office_copy(tmp_path, "port: 15020", f"port: {port}", broker_port=free_port())
        # The meter is served first: the sim stops there, before any fixed port is bound.
        r = vpp("sim", site, "--duration", "PT1S")
    one_line_error(r, str(site), f"127.0.0.1:{port} for meter", "taken")
