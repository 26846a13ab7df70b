"""`vpp replay`: a scenario through the real agent, its counterfactual, and the outputs.

The counterfactual (the same scenario without its events) runs in a second process at the
same time, so a replay costs about one run of wall time on a 2-core machine. Both use the
broker given (`--broker`), or each its own embedded amqtt broker, and the same generated
history: planned once, then copied into each run's store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from vpp.control.strategy import strategy_named
from vpp.grid.types import format_duration
from vpp.replay.broker import replay_broker
from vpp.replay.harness import RunResult, RunSpec, TimedEvent, TimedFault, run
from vpp.replay.history import generate_history
from vpp.replay.scenario import Scenario
from vpp.site import Site
from vpp.store.store import Store

STORE = "store.sqlite"
COUNTERFACTUAL = "counterfactual"
HISTORY = "history.sqlite"  # in the counterfactual's folder while both runs start

Progress = Callable[[float, float], None]


def spec_for(
    sc: Scenario, store_path: Path, *, strategy: str, events: bool = True, seed: int | None = None
) -> RunSpec:
    """The harness run of a scenario (without its events for the counterfactual)."""

    def prices(times: list[datetime]) -> tuple[list[float], list[float], list[float]]:
        return sc.import_prices(times), sc.export_prices(times), sc.carbon(times)

    site = sc.replay_site()
    if not events:
        # The counterfactual may share the broker with the main run: its own site id keeps
        # its topics and MQTT client ids apart.
        cfg = site.config.model_copy(update={"site_id": f"{site.id}-cf"})
        site = Site(config=cfg, devices=site.devices, source=site.source)
    return RunSpec(
        site=site,
        start=sc.start,
        duration_s=sc.duration.total_seconds(),
        store_path=store_path,
        events=[
            TimedEvent(e.send_at, e.event.model_dump(mode="json", exclude_none=True))
            for e in sc.event_messages()
        ]
        if events
        else [],
        faults=[TimedFault(f.device, f.start, f.end, f.faults) for f in sc.fault_windows()],
        strategy=strategy,
        seed=sc.seed if seed is None else seed,
        env=sc.environment(),
        base_load=sc.base_load(),
        prices=prices,
        mqtt_telemetry_s=30.0,
        client_id=f"vpp-replay-{site.id}",
        broker_restarts=sc.broker_restarts(),
        agent_kills=sc.agent_kills(),
    )


def fresh_store(
    out: Path, sc: Scenario, strategy: str = "none", *, history: Path | None = None
) -> Path:
    """An empty store in `out` holding only the scenario's generated history (the days as
    `strategy` would have run them: planned, or the devices on their own). `history`: a
    store that already holds exactly that (`history_store`), copied instead of planned
    again."""
    out.mkdir(parents=True, exist_ok=True)
    store_path = out / STORE
    for p in out.glob(STORE + "*"):
        p.unlink()
    if history is not None:
        _copy_store(history, store_path)
        return store_path
    return history_store(store_path, sc, strategy)


def history_store(path: Path, sc: Scenario, strategy: str) -> Path:
    """Write the scenario's generated history (see `fresh_store`) into a new store at `path`."""
    st = Store(path)
    generate_history(st, sc, planned=strategy_named(strategy).plans)
    st.close()
    return path


def _copy_store(src: Path, dest: Path) -> None:
    # SQLite's backup, not a file copy: the store is in WAL mode.
    with (
        contextlib.closing(sqlite3.connect(src)) as a,
        contextlib.closing(sqlite3.connect(dest)) as b,
    ):
        a.backup(b)


def _prepare_counterfactual(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    cf_dir = out / COUNTERFACTUAL
    if cf_dir.exists():
        shutil.rmtree(cf_dir)
    return cf_dir


async def run_one(
    sc: Scenario,
    out: Path,
    *,
    strategy: str,
    broker_url: str | None,
    events: bool = True,
    progress: Progress | None = None,
    history: Path | None = None,
) -> RunResult:
    """One run into `out/store.sqlite` (history generated first, for like-day baselines, or
    copied from `history`: see `fresh_store`)."""
    store_path = fresh_store(out, sc, strategy, history=history)
    spec = spec_for(sc, store_path, strategy=strategy, events=events)
    async with replay_broker(broker_url) as broker:
        return await run(spec, broker, progress=progress)


def _write_messages(out: Path, result: RunResult) -> None:
    """Every grid message (JSON lines) and the reports, in a stable order."""
    msgs = sorted(
        result.messages,
        # Stable: messages of the same instant keep the order they crossed the broker in
        # (one publisher per direction, QoS 1 on one connection: a deterministic order).
        key=lambda m: (m["ts"], m["dir"]),
    )
    with (out / "messages.jsonl").open("w") as f:
        for m in msgs:
            f.write(json.dumps(m, sort_keys=True) + "\n")
    with (out / "reports.jsonl").open("w") as f:
        for m in msgs:
            if m["topic"].endswith("/reports"):
                f.write(json.dumps(m["msg"], sort_keys=True) + "\n")


def counterfactual_args(
    scenario: Scenario,
    cf_dir: Path,
    *,
    strategy: str,
    broker_url: str | None,
    source: Path | None = None,
    history: Path | None = None,
) -> list[str]:
    """The `vpp replay` command line of a scenario's counterfactual: the scenario as run
    (`source`: the file `Scenario.save` wrote; else the file it came from), the same duration
    (the scenario may have been shortened), no events, no outputs of its own; its history
    copied from `history` (the main run's) when given."""
    args = [sys.executable, "-m", "vpp", "--log-level", "WARNING", "replay"]
    args += [str(source or scenario.source), "--out", str(cf_dir), "--strategy", strategy]
    args += ["--duration", format_duration(scenario.duration)]
    args += ["--no-events", "--no-counterfactual", "--quiet"]
    if history is not None:
        args += ["--history", str(history)]
    if broker_url:
        args += ["--broker", broker_url]
    return args


async def _relay(stream: asyncio.StreamReader | None) -> None:
    """The counterfactual's stderr, line by line, onto ours as it is now (a progress bar's
    while it runs, which prints it above itself; inherited, it would write over the bar)."""
    if stream is None:
        return
    while line := await stream.readline():
        sys.stderr.write(line.decode(errors="replace"))
        sys.stderr.flush()


async def replay(
    scenario: Scenario,
    out: Path,
    *,
    strategy: str,
    broker_url: str | None = None,
    counterfactual: bool = True,
    progress: Progress | None = None,
    on_result: Callable[[RunResult], None] | None = None,
) -> dict[str, Any]:
    """Replay a scenario into `out`: store, messages, reports, summary.json, plots.
    `on_result` is given the main run's RunResult (the clock's hold time-outs: a bench)."""
    from vpp.replay.outputs import write_outputs

    wall0 = time.perf_counter()
    cf_dir = _prepare_counterfactual(out)
    proc = None
    history = None
    if counterfactual and scenario.event_messages():
        # The scenario as it is in memory (it may be shortened or built by a test), not
        # the file it came from.
        source = scenario.save(out / "scenario.yaml")
        # Planned once for both runs (events play no part in it): the counterfactual's
        # process would plan the same days again.
        cf_dir.mkdir()
        history = history_store(cf_dir / HISTORY, scenario, strategy)
        args = counterfactual_args(
            scenario,
            cf_dir,
            strategy=strategy,
            broker_url=broker_url,
            source=source,
            history=history,
        )
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        relay = asyncio.create_task(_relay(proc.stderr))
    result = await run_one(
        scenario, out, strategy=strategy, broker_url=broker_url, progress=progress, history=history
    )
    if on_result is not None:
        on_result(result)
    cf_store = None
    if proc is not None:
        await relay
        if await proc.wait() != 0:
            raise RuntimeError(f"the counterfactual run failed (exit {proc.returncode})")
        cf_store = cf_dir / STORE
    if history is not None:
        for p in cf_dir.glob(HISTORY + "*"):
            p.unlink()
    _write_messages(out, result)
    wall_s = time.perf_counter() - wall0
    return write_outputs(
        out, out / STORE, scenario, strategy=strategy, wall_s=wall_s, counterfactual=cf_store
    )
