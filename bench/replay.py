"""Replay bench: CPU and wall time of `vpp replay` for the bundled office day, quiet and
under load.

Runs `vpp.replay.runner.replay` in process (the same code as `vpp replay`) for the summer
day (20 devices, 15-min planning, 5-s control cycle), then the week scenario shortened to
`--days` days, and reports CPU seconds (this process and its children: the counterfactual and,
with `--broker mosquitto`, the broker; from `resource.getrusage`), wall seconds, the load
average and the clock's hold time-outs,
against the goals of at most 20 s of CPU per simulated day and, with `--load N`, a wall
time under N busy processes within 1.5x of the quiet run's. `--load N` runs every scenario
twice: quiet, then with N busy-loop processes started by the bench for the run's duration
(`--load-session own`: in a session of their own, as another user's jobs run; the default
`bench` keeps them in the bench's session). `--busy-reference` also times a pure busy loop
of the quiet run's CPU time, quiet and under the same load: the ratio any CPU-bound,
single-threaded program gets. `--day-hours H` cuts the day to its first H hours (a
loaded comparison on a busy machine). `--profile HOURS` profiles that many simulated hours
of the day with cProfile instead.
Run: `python bench/replay.py [--json] [--days 2] [--counterfactual] [--load 4]
[--load-session own] [--busy-reference] [--broker mosquitto] [--profile 1]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_ROOT))

from vpp.log import configure_logging  # noqa: E402
from vpp.replay.harness import RunResult  # noqa: E402
from vpp.replay.runner import replay  # noqa: E402
from vpp.replay.scenario import Scenario, load_scenario  # noqa: E402

DAY = _ROOT / "config/scenarios/office-summer-day.yaml"
WEEK = _ROOT / "config/scenarios/office-week.yaml"
TARGET_S_PER_DAY = 60.0  # wall, quiet (the first goal)
CPU_GOAL_S_PER_DAY = 20.0  # CPU of the main process and the counterfactual
LOADED_GOAL_RATIO = 1.5  # wall time under `--load N` over the quiet run's


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _cpu_s(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


@contextlib.contextmanager
def busy_processes(n: int, *, own_session: bool = False) -> Iterator[None]:
    """`n` processes spinning on a core each (nice 0, like another engineer's tests). With
    `own_session` they run in a session of their own, as another user's jobs do: with the
    kernel's autogroup scheduling (`/proc/sys/kernel/sched_autogroup_enabled`) CPU is then
    shared between sessions first, not between the bench's and the busy processes one by one."""
    if own_session:
        # One session for all n (one other user), its leader the first of them.
        spin = (
            f"import os\nfor _ in range({n - 1}):\n    if os.fork() == 0: break\nwhile True: pass"
        )
        leader = subprocess.Popen([sys.executable, "-c", spin], start_new_session=True)
        try:
            time.sleep(1.0)
            yield
        finally:
            os.killpg(leader.pid, signal.SIGKILL)
            leader.wait()
        return
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(1.0)  # let the scheduler see them before the run starts
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def busy_loop(cpu_s: float) -> float:
    """Wall seconds a pure busy loop takes to use `cpu_s` of CPU: what any CPU-bound,
    single-threaded program gets from the machine at the moment."""
    t0 = time.perf_counter()
    c0 = time.process_time()
    n = 0
    while time.process_time() - c0 < cpu_s:
        for _ in range(10_000):
            n += 1
    return time.perf_counter() - t0


def time_busy_loop(cpu_s: float, *, load: int, own_session: bool) -> dict[str, Any]:
    """The reference for a loaded run: a busy loop of `cpu_s` CPU seconds, quiet, then under
    the same `load` as the run."""
    before = os.getloadavg()[0]
    quiet = busy_loop(cpu_s)
    with busy_processes(load, own_session=own_session):
        loaded = busy_loop(cpu_s)
    row = {
        "busy_loop_cpu_s": round(cpu_s, 2),
        "busy_loop_quiet_wall_s": round(quiet, 2),
        "busy_loop_loaded_wall_s": round(loaded, 2),
        "busy_loop_ratio": round(loaded / quiet, 2),
        "busy_loop_loadavg_1min_before": round(before, 2),
        "busy_loop_loadavg_1min_after": round(os.getloadavg()[0], 2),
    }
    _log(
        f"busy loop of {cpu_s:.1f} s CPU: {quiet:.1f} s wall quiet, {loaded:.1f} s with {load}"
        f" busy processes ({row['busy_loop_ratio']}x)"
    )
    return row


def time_replay(
    sc: Scenario,
    label: str,
    *,
    counterfactual: bool,
    load: int = 0,
    own_session: bool = False,
    broker_url: str | None = None,
) -> dict[str, Any]:
    """CPU and wall time of one replay of `sc` into a temporary folder (outputs included),
    with `load` busy processes on the machine meanwhile."""
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="vpp-bench-replay-") as tmp:
        busy = busy_processes(load, own_session=own_session) if load else None
        with busy or contextlib.nullcontext():
            load_before = os.getloadavg()[0]
            t0 = time.perf_counter()
            cpu0 = _cpu_s(resource.RUSAGE_SELF)
            child0 = _cpu_s(resource.RUSAGE_CHILDREN)  # busy processes are reaped after
            asyncio.run(
                replay(
                    sc,
                    Path(tmp),
                    strategy=sc.strategy,
                    counterfactual=counterfactual,
                    broker_url=broker_url,
                    on_result=results.append,
                )
            )
            wall = time.perf_counter() - t0
            cpu = _cpu_s(resource.RUSAGE_SELF) - cpu0
            cpu_cf = _cpu_s(resource.RUSAGE_CHILDREN) - child0
            load_after = os.getloadavg()[0]
    sim_s = sc.duration.total_seconds()
    days = sim_s / 86400.0
    row = {
        "run": label,
        "scenario": sc.name,
        "counterfactual": counterfactual,
        "busy_processes": load,
        "busy_own_session": own_session if load else None,
        "broker": broker_url or "embedded amqtt",
        "sim_s": sim_s,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "cpu_counterfactual_s": round(cpu_cf, 2),
        "cpu_s_per_day": round((cpu + cpu_cf) / days, 2),
        "cpu_goal_s_per_day": CPU_GOAL_S_PER_DAY,
        "speedup": round(sim_s / wall, 1),
        "wall_s_per_day": round(wall / days, 2),
        "target_s_per_day": TARGET_S_PER_DAY,
        "ratio_to_target": round(wall / days / TARGET_S_PER_DAY, 2),
        "hold_timeouts": results[0].hold_timeouts if results else None,
        "clock_leaps": results[0].leaps if results else None,
        "loadavg_1min_before": round(load_before, 2),
        "loadavg_1min_after": round(load_after, 2),
    }
    _log(
        f"{label}: {row['wall_s']} s wall, {row['cpu_s']} s CPU for {sim_s / 3600:.0f} h"
        f" simulated, {load} busy processes, {row['hold_timeouts']} hold time-outs"
    )
    return row


def _runs(
    sc: Scenario,
    label: str,
    *,
    counterfactual: bool,
    load: int,
    own_session: bool = False,
    busy_reference: bool = False,
    broker_url: str | None = None,
) -> list[dict[str, Any]]:
    """Quiet, then (with `load`) under load; the loaded row carries its wall ratio and, with
    `busy_reference`, that of a busy loop of the quiet run's CPU time under the same load."""
    quiet = time_replay(sc, label, counterfactual=counterfactual, broker_url=broker_url)
    if not load:
        return [quiet]
    loaded = time_replay(
        sc,
        f"{label}@load{load}",
        counterfactual=counterfactual,
        load=load,
        own_session=own_session,
        broker_url=broker_url,
    )
    loaded["wall_ratio_to_quiet"] = round(loaded["wall_s"] / quiet["wall_s"], 2)
    loaded["loaded_goal_ratio"] = LOADED_GOAL_RATIO
    if busy_reference:
        cpu = quiet["cpu_s"] + quiet["cpu_counterfactual_s"]
        loaded |= time_busy_loop(cpu, load=load, own_session=own_session)
    return [quiet, loaded]


def profile_hours(hours: float, top: int) -> str:
    """cProfile of `hours` simulated hours of the day (no counterfactual); top costs."""
    sc = load_scenario(DAY).with_duration(timedelta(hours=hours))
    prof = cProfile.Profile()
    with tempfile.TemporaryDirectory(prefix="vpp-bench-replay-") as tmp:
        prof.enable()
        asyncio.run(replay(sc, Path(tmp), strategy=sc.strategy, counterfactual=False))
        prof.disable()
    out = io.StringIO()
    st = pstats.Stats(prof, stream=out)
    st.sort_stats("tottime").print_stats(top)
    st.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=2.0, help="days of the week scenario (0: skip)")
    ap.add_argument(
        "--counterfactual",
        action="store_true",
        help="also run the counterfactual process, as `vpp replay` does by default",
    )
    ap.add_argument("--no-day", action="store_true", help="skip the summer-day run")
    ap.add_argument("--day-hours", type=float, default=24.0, help="cut the day to its first hours")
    ap.add_argument(
        "--load", type=int, default=0, help="run each again with this many busy processes"
    )
    ap.add_argument(
        "--load-session",
        choices=("bench", "own"),
        default="bench",
        help="busy processes in the bench's session, or in one of their own (another user's)",
    )
    ap.add_argument(
        "--busy-reference",
        action="store_true",
        help="with --load: also time a busy loop of the quiet run's CPU, quiet and loaded",
    )
    ap.add_argument(
        "--broker",
        default=None,
        help="`mosquitto` (a Mosquitto process the replay starts: its CPU counts as the"
        " children's) or a broker URL; default the embedded amqtt, in this process",
    )
    ap.add_argument("--profile", type=float, default=0.0, help="profile this many sim hours")
    ap.add_argument("--top", type=int, default=30, help="rows of the profile")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()
    configure_logging("WARNING")

    if args.profile > 0:
        print(profile_hours(args.profile, args.top))
        return
    rows: list[dict[str, Any]] = []
    kw: dict[str, Any] = {
        "counterfactual": args.counterfactual,
        "load": args.load,
        "own_session": args.load_session == "own",
        "busy_reference": args.busy_reference,
        "broker_url": args.broker,
    }
    if not args.no_day:
        day = load_scenario(DAY)
        if args.day_hours < 24:
            day = day.with_duration(timedelta(hours=args.day_hours))
        label = "day" if args.day_hours >= 24 else f"day[:{args.day_hours:g}h]"
        rows += _runs(day, label, **kw)
    if args.days > 0:
        week = load_scenario(WEEK).with_duration(timedelta(days=args.days))
        rows += _runs(week, f"week[:{args.days:g}d]", **kw)
    load = os.getloadavg()
    doc = {"cpus": os.cpu_count(), "loadavg_after": [round(x, 2) for x in load], "runs": rows}
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    print(
        f"{'run':<20}{'sim h':>6}{'wall s':>8}{'cpu s':>8}{'cpu/day':>8}{'speed-up':>10}"
        f"{'/quiet':>8}{'holds':>6}{'load':>13}"
    )
    for r in rows:
        ratio = f"{r['wall_ratio_to_quiet']:.2f}x" if "wall_ratio_to_quiet" in r else "-"
        print(
            f"{r['run']:<20}{r['sim_s'] / 3600:>6.0f}{r['wall_s']:>8.1f}"
            f"{r['cpu_s'] + r['cpu_counterfactual_s']:>8.1f}{r['cpu_s_per_day']:>8.1f}"
            f"{r['speedup']:>9.0f}x{ratio:>8}{r['hold_timeouts']!s:>6}"
            f"{r['loadavg_1min_before']:>7.2f}>{r['loadavg_1min_after']:.2f}"
        )
    for r in rows:
        if "busy_loop_ratio" in r:
            print(
                f"{r['run']}: a busy loop of {r['busy_loop_cpu_s']:.1f} s CPU takes"
                f" {r['busy_loop_ratio']:.2f}x its quiet wall under the same load"
            )
    print(
        f"goals: <= {CPU_GOAL_S_PER_DAY:.0f} s CPU per simulated day; under load, wall <="
        f" {LOADED_GOAL_RATIO}x quiet; load avg {load}"
    )


if __name__ == "__main__":
    main()
