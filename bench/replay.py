"""Replay bench: wall time of `vpp replay` for the bundled office day, and how it scales.

Runs `vpp.replay.runner.replay` in process (the same code as `vpp replay`) for the summer
day (20 devices, 15-min planning, 5-s control cycle), then the week scenario shortened to
`--days` days, and reports wall seconds, simulated seconds and speed-up over real time,
against the target of at most 60 s of wall time per simulated day on a 2-core machine.
`--profile HOURS` profiles that many simulated hours of the day with cProfile instead.
Run: `python bench/replay.py [--json] [--days 2] [--counterfactual] [--profile 1]`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_ROOT))

from vpp.log import configure_logging  # noqa: E402
from vpp.replay.runner import replay  # noqa: E402
from vpp.replay.scenario import Scenario, load_scenario  # noqa: E402

DAY = _ROOT / "config/scenarios/office-summer-day.yaml"
WEEK = _ROOT / "config/scenarios/office-week.yaml"
TARGET_S_PER_DAY = 60.0


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def time_replay(sc: Scenario, label: str, *, counterfactual: bool) -> dict[str, Any]:
    """Wall time of one replay of `sc` into a temporary folder (outputs included)."""
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="vpp-bench-replay-") as tmp:
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        asyncio.run(replay(sc, Path(tmp), strategy=sc.strategy, counterfactual=counterfactual))
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_cf = (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
    sim_s = sc.duration.total_seconds()
    days = sim_s / 86400.0
    row = {
        "run": label,
        "scenario": sc.name,
        "counterfactual": counterfactual,
        "sim_s": sim_s,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "cpu_counterfactual_s": round(cpu_cf, 2),
        "speedup": round(sim_s / wall, 1),
        "wall_s_per_day": round(wall / days, 2),
        "target_s_per_day": TARGET_S_PER_DAY,
        "ratio_to_target": round(wall / days / TARGET_S_PER_DAY, 2),
        "loadavg_1min_before": round(load_before, 2),
        "loadavg_1min_after": round(os.getloadavg()[0], 2),
    }
    _log(f"{label}: {row['wall_s']} s wall for {sim_s / 3600:.0f} h simulated")
    return row


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
    ap.add_argument("--profile", type=float, default=0.0, help="profile this many sim hours")
    ap.add_argument("--top", type=int, default=30, help="rows of the profile")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()
    configure_logging("WARNING")

    if args.profile > 0:
        print(profile_hours(args.profile, args.top))
        return
    rows = []
    if not args.no_day:
        rows.append(time_replay(load_scenario(DAY), "day", counterfactual=args.counterfactual))
    if args.days > 0:
        week = load_scenario(WEEK).with_duration(timedelta(days=args.days))
        label = f"week[:{args.days:g}d]"
        rows.append(time_replay(week, label, counterfactual=args.counterfactual))
    load = os.getloadavg()
    doc = {"cpus": os.cpu_count(), "loadavg_after": [round(x, 2) for x in load], "runs": rows}
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    print(
        f"{'run':<14}{'sim h':>7}{'wall s':>9}{'cpu s':>8}{'speed-up':>10}{'s/day':>8}"
        f"{'/target':>9}{'load':>12}"
    )
    for r in rows:
        print(
            f"{r['run']:<14}{r['sim_s'] / 3600:>7.0f}{r['wall_s']:>9.1f}{r['cpu_s']:>8.1f}"
            f"{r['speedup']:>9.0f}x{r['wall_s_per_day']:>8.1f}{r['ratio_to_target']:>8.2f}x"
            f"{r['loadavg_1min_before']:>6.2f}>{r['loadavg_1min_after']:.2f}"
        )
    print(f"target: <= {TARGET_S_PER_DAY:.0f} s wall per simulated day; load avg {load}")


if __name__ == "__main__":
    main()
