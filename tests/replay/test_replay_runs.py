"""Whole replays of the bundled office, shortened: the counterfactual process runs as long as
the main run, and the same scenario and seed give the same outputs byte for byte.

The scenario is the bundled summer day with its curtailment moved to its start (sent at
00:01, 00:05-00:35 in two 15-min intervals) and the run cut to 40 minutes, so that a short
test covers the event, its responses, its reports and the counterfactual.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Broker
from tests.replay.helpers import SCENARIOS, write_scenario
from vpp.replay.compare import write_comparison
from vpp.replay.intervals import SERIES_FILE
from vpp.replay.runner import (
    COUNTERFACTUAL,
    HISTORY,
    STORE,
    counterfactual_args,
    replay,
    run_one,
)
from vpp.replay.scenario import Scenario, load_scenario

RUN = timedelta(minutes=40)


def early_event_day(tmp: Path) -> Scenario:
    """office-summer-day with its event in the first hour, cut to `RUN`."""
    data = yaml.safe_load((SCENARIOS / "office-summer-day.yaml").read_text())
    del data["site"]
    data["events"][0].update(send_at="PT1M", start="PT5M", duration="PT30M")
    return load_scenario(write_scenario(tmp, data, "early-event.yaml")).with_duration(RUN)


def _last_meter_ts(store: Path) -> float:
    db = sqlite3.connect(store)
    try:
        row = db.execute(
            "SELECT MAX(ts) FROM telemetry WHERE device_id='meter' AND point='import_power_kw'"
        ).fetchone()
    finally:
        db.close()
    return float(row[0])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scenario, Path, Path]:
    """The same scenario replayed twice, counterfactual included, each through its own
    embedded broker (`vpp replay`'s default: the broker runs in the replay's process, so every
    hop is inside the event loop the virtual clock watches)."""
    tmp = tmp_path_factory.mktemp("replay-runs")
    sc = early_event_day(tmp)
    for name in ("a", "b"):
        asyncio.run(replay(sc, tmp / name, strategy=sc.strategy))
    return sc, tmp / "a", tmp / "b"


def test_counterfactual_command_line_carries_the_duration(tmp_path: Path) -> None:
    sc = load_scenario(SCENARIOS / "office-summer-day.yaml").with_duration("PT6H30M")
    args = counterfactual_args(sc, tmp_path / "cf", strategy="rules", broker_url=None)
    assert args[args.index("--duration") + 1] == "PT6H30M"
    assert "--no-events" in args and "--broker" not in args
    assert args[args.index("--strategy") + 1] == "rules"


def _history(store: Path, before: float) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(store)
    try:
        return db.execute(
            "SELECT * FROM telemetry WHERE ts < ? ORDER BY ts, device_id, point", (before,)
        ).fetchall()
    finally:
        db.close()


def test_counterfactual_starts_from_the_main_runs_history(
    two_runs: tuple[Scenario, Path, Path], tmp_path: Path
) -> None:
    sc, a, _ = two_runs
    start = sc.start.timestamp()
    main = _history(a / STORE, start)
    assert len(main) == sc.config.history_days * 24 * 60  # the meter's minutes
    assert _history(a / COUNTERFACTUAL / STORE, start) == main
    assert not list((a / COUNTERFACTUAL).glob(HISTORY + "*"))  # the shared copy is gone
    args = counterfactual_args(
        sc, tmp_path, strategy="rules", broker_url=None, history=tmp_path / HISTORY
    )
    assert args[args.index("--history") + 1] == str(tmp_path / HISTORY)


@pytest.mark.parametrize(
    ("extra", "why"),
    [([], "only with --no-events"), (["--no-events"], "no such file")],
)
def test_a_history_store_that_cannot_be_used_is_one_line(
    tmp_path: Path, extra: list[str], why: str
) -> None:
    sc = SCENARIOS / "office-summer-day.yaml"
    cmd = [sys.executable, "-m", "vpp", "replay", str(sc), "--out", str(tmp_path / "out")]
    cmd += ["--history", str(tmp_path / "none.sqlite"), "--quiet", *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(f"error: --history: {why}")


def test_counterfactual_runs_only_the_shortened_duration(
    two_runs: tuple[Scenario, Path, Path],
) -> None:
    sc, a, _ = two_runs
    end = (sc.start + RUN).timestamp()
    cf_last = _last_meter_ts(a / COUNTERFACTUAL / STORE)
    main_last = _last_meter_ts(a / STORE)
    # Both stores end with the window of the run's last reading (at its end), not later.
    assert end - 60 <= cf_last <= end
    assert cf_last == main_last
    summary = json.loads((a / "summary.json").read_text())
    assert summary["baseline"] == "counterfactual"
    assert summary["simulated_s"] == RUN.total_seconds()


def _without_wall(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    assert isinstance(doc.pop("wall_s"), float)
    return doc


def test_same_scenario_and_seed_give_the_same_outputs(
    two_runs: tuple[Scenario, Path, Path],
) -> None:
    _, a, b = two_runs
    reports = (a / "reports.jsonl").read_bytes()
    assert len(reports.splitlines()) >= 2  # interval reports and the final one were sent
    assert reports == (b / "reports.jsonl").read_bytes()
    assert (a / "messages.jsonl").read_bytes() == (b / "messages.jsonl").read_bytes()
    sa, sb = _without_wall(a / "summary.json"), _without_wall(b / "summary.json")
    assert sa == sb
    ev = sa["events"][0]
    assert ev["event_id"] == "summer-curtail-1" and ev["delivered_ratio"] is not None
    assert (a / SERIES_FILE).read_bytes() == (b / SERIES_FILE).read_bytes()


def test_series_and_comparison_of_real_runs(two_runs: tuple[Scenario, Path, Path]) -> None:
    """series.csv carries the report's interval ratios (its lowest is the summary's lowest);
    the comparison of two folders as `vpp replay --compare` leaves them."""
    sc, a, b = two_runs
    with (a / SERIES_FILE).open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2  # a 40-min run: 00:00 and 00:15 (the last quarter is unfinished)
    event_rows = [r for r in rows if r["event_id"] == "summer-curtail-1"]
    assert len(event_rows) == 2  # 00:05-00:20 covers most of 00:00, 00:20-00:35 of 00:15
    # The second interval ends after the run's last whole quarter: no baseline, no ratio.
    ratios = [float(r["ratio"]) for r in event_rows if r["ratio"]]
    summary = json.loads((a / "summary.json").read_text())
    assert ratios and min(ratios) == summary["events"][0]["min_interval_ratio"]
    assert all(r["site_import_kw"] for r in rows)
    assert all(r["counterfactual_kw"] for r in rows)
    compared = write_comparison(sc, [("a", a), ("b", b)])
    assert [p.parent for p in compared] == [a, b]
    assert compared[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _commands(store: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(store)
    try:
        return db.execute(
            # Writes to different devices in one cycle run concurrently: their row order
            # within an instant is the order they completed, not part of the outcome.
            "SELECT ts, device_id, point, requested, written, reason FROM commands"
            " ORDER BY ts, device_id, point, id"
        ).fetchall()
    finally:
        db.close()


async def test_same_outputs_through_an_external_broker(
    fresh_mosquitto: Broker, tmp_path: Path
) -> None:
    """Through Mosquitto (another process): publishes hold the virtual clock until the broker
    has acknowledged them, so the broker's timing cannot move a control cycle in simulated
    time. Before that hold, two runs wrote different command logs."""
    sc = early_event_day(tmp_path)
    for name in ("a", "b"):
        await replay(sc, tmp_path / name, strategy=sc.strategy, broker_url=fresh_mosquitto.url)
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "reports.jsonl").read_bytes() == (b / "reports.jsonl").read_bytes()
    assert (a / "messages.jsonl").read_bytes() == (b / "messages.jsonl").read_bytes()
    assert _without_wall(a / "summary.json") == _without_wall(b / "summary.json")
    ca, cb = _commands(a / STORE), _commands(b / STORE)
    assert len(ca) > 100 and ca == cb


BUSY_WHILE_PARENT_LIVES = "import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass"
"""A busy loop that ends when its parent does: a worker that dies mid-test (pytest-xdist's
"node down") left `while True: pass` spinning for good (four of them at 40 min seen)."""


async def test_a_loaded_machine_changes_nothing(tmp_path: Path) -> None:
    """Four busy processes on the machine for the whole run: the run is slower in wall time,
    never different (the clock waits for held work; it used to give up after 1 s of wall
    time and let simulated time move on, logging a hold time-out)."""
    sc = early_event_day(tmp_path)
    quiet = await run_one(sc, tmp_path / "quiet", strategy=sc.strategy, broker_url=None)
    busy = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", BUSY_WHILE_PARENT_LIVES)
        for _ in range(4)
    ]
    try:
        loaded = await run_one(sc, tmp_path / "loaded", strategy=sc.strategy, broker_url=None)
    finally:
        for p in busy:
            p.kill()
            await p.wait()
    assert (quiet.hold_timeouts, loaded.hold_timeouts) == (0, 0), loaded.lost
    assert loaded.messages == quiet.messages
    commands = _commands(loaded.store_path)
    assert len(commands) > 100 and commands == _commands(quiet.store_path)
