"""What a replay shows while it runs (issue 16, point 4): on a terminal a live bar with the
log lines above it, never over it; piped, a `replay_progress` line every few seconds of wall
time; `--quiet`, only the result. The terminal is a real pseudo-terminal, read back through
a terminal emulator (pyte)."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pyte
from rich.console import Console
from structlog.testing import capture_logs

from vpp.replay.progress import ReplayProgress

ROOT = Path(__file__).resolve().parents[2]
SUMMER = ROOT / "config" / "scenarios" / "office-summer-day.yaml"
REPLAY = [sys.executable, "-m", "vpp", "replay", str(SUMMER), "--duration", "PT30M"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "160", "LINES": "50"}


class FakeWall:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_piped_progress_lines_come_every_period_of_wall_time_and_at_the_end() -> None:
    wall = FakeWall()
    piped = Console(file=io.StringIO())  # not a terminal
    start = datetime(2026, 7, 15, tzinfo=UTC)
    with capture_logs() as logs:
        with ReplayProgress(
            "r", start, ZoneInfo("Asia/Shanghai"), 3600, console=piped, period_s=5, wall=wall
        ) as progress:
            for wall_s, t in [(1, 60), (4.9, 120), (5, 180), (9, 240), (10.1, 300), (11, 3600)]:
                wall.now = 100 + wall_s
                progress(t, 3600)
    lines = [entry for entry in logs if entry["event"] == "replay_progress"]
    assert [(e["wall_s"], e["done_pct"]) for e in lines] == [
        (0.0, 0.0),
        (5.0, 5.0),
        (10.1, 8.3),
        (11.0, 100.0),  # the end, though the period has not passed
    ]
    assert lines[1]["sim_time"] == "2026-07-15T08:03:00+08:00"  # the scenario's time zone
    assert lines[1]["speed"] == "36x"
    assert piped.file.getvalue() == ""  # type: ignore[attr-defined]  # no bar when piped


def test_quiet_progress_says_nothing() -> None:
    with capture_logs() as logs:
        with ReplayProgress(
            "r", datetime(2026, 7, 15, tzinfo=UTC), ZoneInfo("UTC"), 60, quiet=True
        ) as progress:
            progress(60, 60)
    assert logs == []


def test_piped_replay_logs_progress_lines_and_quiet_prints_only_the_result(
    tmp_path: Path,
) -> None:
    r = subprocess.run(
        [*REPLAY, "--out", str(tmp_path / "a"), "--no-counterfactual"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=ENV,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    logs = [json.loads(line) for line in r.stderr.splitlines()]  # every line is JSON
    progress = [e for e in logs if e["event"] == "replay_progress"]
    assert progress[0]["done_pct"] == 0.0 and progress[-1]["done_pct"] == 100.0
    assert progress[-1]["sim_time"] == "2026-07-15T00:30:00+08:00"
    gaps = [b["wall_s"] - a["wall_s"] for a, b in pairwise(progress[:-1])]  # the end: any time
    assert all(g >= 5.0 for g in gaps), progress  # no more often than every 5 s
    assert any(e["event"] == "agent_starting" for e in logs)

    q = subprocess.run(
        [*REPLAY, "--out", str(tmp_path / "q"), "--no-counterfactual", "--quiet"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=ENV,
    )  # fmt: skip
    assert q.returncode == 0, q.stderr
    assert q.stderr == ""  # no logs, no progress
    assert "office-summer-day: strategy optimiser" in q.stdout  # the result table
    assert q.stdout.rstrip().endswith("store.sqlite)")  # and where the outputs are


def _on_a_terminal(args: list[str]) -> tuple[int, str]:
    """Run `args` with stderr on a pseudo-terminal; what it wrote there, as raw text."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, cwd=ROOT,
        env={**ENV, "TERM": "xterm-256color"},
    )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed its end
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        proc.wait(timeout=300)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def test_on_a_terminal_log_lines_go_above_the_bar_not_over_it(tmp_path: Path) -> None:
    code, raw = _on_a_terminal([*REPLAY, "--out", str(tmp_path / "t"), "--no-counterfactual"])
    assert code == 0, raw[-2000:]
    screen = pyte.Screen(160, 400)
    stream = pyte.Stream(screen)
    stream.feed(raw.replace("\n", "\r\n").replace("\r\r\n", "\r\n"))  # a tty's onlcr
    rows = [line.rstrip() for line in screen.display if line.strip()]
    bars = [i for i, line in enumerate(rows) if "━" in line]
    assert len(bars) == 1 and bars[0] == len(rows) - 1, "\n".join(rows)  # one bar, at the end
    assert "Wed 00:30" in rows[-1]  # it reached the end of the replay
    logged = [line for line in rows[:-1] if "[info" in line]
    for name in ("agent_starting", "planned", "event_message", "agent_stopped"):
        assert any(name in line for line in logged), "\n".join(rows)
    assert all(line.split()[1].startswith("[info") for line in logged), "\n".join(rows)
