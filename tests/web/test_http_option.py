"""`--http` / `--serve` refuse what they cannot serve safely, in one line naming the option
(exit 2), before anything starts: not HOST:PORT, a non-loopback address without a token, an
empty token variable, an address already in use."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OFFICE = ROOT / "config" / "sites" / "office.yaml"
SUMMER = ROOT / "config" / "scenarios" / "office-summer-day.yaml"


def vpp(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vpp", *map(str, args)],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args, expected",
    [
        (("--http", "8080"), "--http: expected HOST:PORT"),
        (("--http", "127.0.0.1:99999"), "--http: expected HOST:PORT"),
        (("--http", "0.0.0.0:8080"), "--http 0.0.0.0:8080 is not a loopback address"),
        (
            ("--http", "127.0.0.1:0", "--http-token-env", "VPP_TEST_NO_SUCH_TOKEN"),
            "--http-token-env: the environment variable VPP_TEST_NO_SUCH_TOKEN is empty",
        ),
        (("--http", "192.0.2.1:8080", "--http-token-env", "VPP_TEST_TOKEN"), "cannot listen"),
    ],
)
def test_vpp_run_http_refuses_in_one_line(args: tuple[str, ...], expected: str) -> None:
    r = vpp("run", OFFICE, *args, env={"VPP_TEST_TOKEN": "x"})
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], r.stderr


def test_an_address_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = vpp("run", OFFICE, "--http", f"127.0.0.1:{port}")
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"error: --http 127.0.0.1:{port}: cannot listen: Address already in use"
    ), r.stderr


def test_replay_serve_is_checked_before_the_replay_runs() -> None:
    r = vpp("replay", SUMMER, "--serve", "10.1.2.3:80", "--quiet")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: --serve 10.1.2.3:80 is not a loopback address: give a token with "
        "--http-token-env VAR"
    ]
