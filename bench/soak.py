"""Soak bench: a simulated week of the office on a bad week (devices down, broker restarts,
agent kills: config/scenarios/office-week-faults.yaml), replayed through the real agent.

Checks, and exits 1 when one fails: every event of the scenario answered `received` and
`completed` once each and given exactly one final report; every restart and kill enacted;
memory (RSS) and the store grow only with the data: RSS at the end within 1.25x of RSS at
the end of the first day, and the store's bytes per simulated day after the first within
1.5x of each other (the first day also holds the generated history). Prints a JSON row
(with CPU time and load average beside wall time) for docs/performance.md.
Run: `python bench/soak.py [--days 7] [--broker mosquitto] [--json]`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_ROOT))

from vpp.log import configure_logging  # noqa: E402
from vpp.replay.runner import STORE, replay  # noqa: E402
from vpp.replay.scenario import Scenario, load_scenario  # noqa: E402

SCENARIO = _ROOT / "config/scenarios/office-week-faults.yaml"
RSS_GROWTH_LIMIT = 1.25
STORE_DAY_SPREAD_LIMIT = 1.5


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rss_mb() -> float:
    """This process's resident set (MB), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _store_bytes(out: Path) -> int:
    return sum(p.stat().st_size for p in out.glob(STORE + "*"))


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def check(sc: Scenario, out: Path) -> list[str]:
    """What the run did wrong (empty: every event completed and reported)."""
    problems: list[str] = []
    messages = _lines(out / "messages.jsonl")
    reports = _lines(out / "reports.jsonl")
    for ev in sc.final_events():
        answers = [
            m["msg"]["status"]
            for m in messages
            if m["dir"] == "site->grid" and m["msg"].get("event_id") == ev.event_id
            and "status" in m["msg"]
        ]  # fmt: skip
        for status in ("received", "completed"):
            if answers.count(status) < 1:
                problems.append(f"{ev.event_id}: no {status} (answers: {answers})")
        finals = [r for r in reports if r.get("event_id") == ev.event_id and r.get("final")]
        if len(finals) != 1:
            problems.append(f"{ev.event_id}: {len(finals)} final reports")
    restarts = sum(1 for m in messages if m["dir"] == "broker")
    kills = sum(1 for m in messages if m["dir"] == "agent")
    if restarts != len(sc.broker_restarts()):
        problems.append(f"{restarts} broker restarts enacted of {len(sc.broker_restarts())}")
    if kills != len(sc.agent_kills()):
        problems.append(f"{kills} agent kills enacted of {len(sc.agent_kills())}")
    return problems


def soak(days: int, broker: str | None) -> dict[str, Any]:
    sc = load_scenario(SCENARIO).with_duration(f"P{days}D")
    samples: list[tuple[float, float, int]] = []  # (simulated day, RSS MB, store bytes)
    with tempfile.TemporaryDirectory(prefix="vpp-bench-soak-") as tmp:
        out = Path(tmp) / "run"

        def progress(t: float, total: float) -> None:
            if t % 86400.0 == 0:
                samples.append((t / 86400.0, rss_mb(), _store_bytes(out)))
                _log(f"day {t / 86400:.0f}: RSS {samples[-1][1]:.0f} MB, store {samples[-1][2]} B")

        load0 = os.getloadavg()
        t0, cpu0 = time.perf_counter(), time.process_time()
        child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        asyncio.run(
            replay(
                sc, out, strategy=sc.strategy, broker_url=broker, counterfactual=False,
                progress=progress,
            )
        )  # fmt: skip
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        problems = check(sc, out)
        size_end = _store_bytes(out)
    per_day = [b - a for (_, _, a), (_, _, b) in itertools.pairwise(samples)]
    rss_first, rss_end = samples[0][1], samples[-1][1]
    spread = max(per_day) / max(1, min(per_day)) if per_day else 1.0
    rss_growth = rss_end / rss_first
    if rss_growth > RSS_GROWTH_LIMIT:
        problems.append(f"RSS grew {rss_growth:.2f}x from day 1 to day {days}")
    if spread > STORE_DAY_SPREAD_LIMIT:
        problems.append(f"store bytes per day spread {spread:.2f}x: {per_day}")
    return {
        "scenario": sc.name,
        "days": days,
        "broker": broker or "embedded",
        "events": len(sc.final_events()),
        "broker_restarts": len(sc.broker_restarts()),
        "agent_kills": len(sc.agent_kills()),
        "problems": problems,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "cpu_children_s": round(
            (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime), 1
        ),
        "rss_mb_by_day": [round(r, 1) for _, r, _ in samples],
        "rss_growth": round(rss_growth, 3),
        "rss_growth_limit": RSS_GROWTH_LIMIT,
        "store_bytes_by_day": [b for _, _, b in samples],
        "store_bytes_end": size_end,
        "store_bytes_per_day_spread": round(spread, 3),
        "store_spread_limit": STORE_DAY_SPREAD_LIMIT,
        "loadavg_before": [round(x, 2) for x in load0],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--broker", default=None, help="'mosquitto' or a URL (default: embedded)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    configure_logging("WARNING")
    row = soak(args.days, args.broker)
    print(json.dumps(row, indent=None if args.json else 2))
    sys.exit(1 if row["problems"] else 0)


if __name__ == "__main__":
    main()
