"""Bad input to any command is one `error:` line naming the option, exit 2, before any
connection or work (issue 16): no broker runs on port 9, so a command that got as far as
connecting would say so instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUMMER = ROOT / "config" / "scenarios" / "office-summer-day.yaml"
NO_BROKER = ("--broker", "mqtt://127.0.0.1:9")
SEND = ("event", "send", "--site", "office-1", *NO_BROKER)


def vpp(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "vpp", *map(str, args)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env,
    )  # fmt: skip


@pytest.mark.parametrize(
    "args, names",
    [
        (("replay", SUMMER, "--out", "/proc/nope", "--duration", "PT10M"), ["--out", "/proc/nope"]),
        ((*SEND, "--file", "/nonexistent/event.json"), ["--file", "cannot read"]),
        ((*SEND, "--file", "{bad}"), ["--file", "is not JSON"]),
        ((*SEND, "--curtail-kw", "5", "--duration", "PT1H", "--wait-s", "-1"), ["--wait-s"]),
        (("event", "send", "--site", "a/b", "--curtail-kw", "5", "--duration", "PT1H",
          *NO_BROKER), ["--site", "'a/b'"]),
        (("status", "--site", "a/+", *NO_BROKER), ["--site", "'a/+'"]),
        ((*SEND, "--curtail-kw", "5", "--duration", "PT1H", "--start", "2020-01-01T00:00:00Z"),
         ["start", "2020-01-01T01:00:00", "already ended"]),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_naming_the_option(
    args: tuple[str | Path, ...], names: list[str], tmp_path: Path
) -> None:
    args = tuple(a.replace("{bad}", str(tmp_path / "bad.json")) for a in map(str, args))
    (tmp_path / "bad.json").write_text("{not json")
    r = vpp(*args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: ") and "cannot reach the broker" not in line
    for n in names:
        assert n in line, line
