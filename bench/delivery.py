"""Delivery bench: generated buildings (tests/buildings.py, one per seed), each replayed
through the agent for a 3 h curtailment of 35 % of its peak base load (the event's
afternoon), with the optimiser and with the rule strategy, measured against the
counterfactual. Prints per strategy the distribution of the worst interval's delivered ratio
(worst, 5th percentile, median), the mean delivered ratio, comfort and unmet EV energy, with
CPU seconds (this process and its children), wall seconds and the load average beside.

Run: `PYTHONPATH=. .venv/bin/python bench/delivery.py [--scenarios 100] [--first-seed 1]
[--strategies optimiser,rules] [--json]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_ROOT))

from tests.buildings import afternoon, spec_from_seed  # noqa: E402
from vpp.log import configure_logging  # noqa: E402
from vpp.replay.runner import replay  # noqa: E402


def _cpu_s() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


def _events(seed: int) -> list[dict[str, Any]]:
    value = round(0.35 * spec_from_seed(seed).base_peak_kw)
    return [
        {
            "event_id": "curtail-3h",
            "send_at": "PT1M",
            "signal": "curtail_kw",
            "start": "PT45M",
            "duration": "PT3H",
            "interval": "PT15M",
            "value": value,
        }
    ]


async def _one(seed: int, strategy: str, tmp: Path) -> dict[str, Any]:
    spec = spec_from_seed(seed)
    d = tmp / f"{seed}-{strategy}"
    d.mkdir(parents=True)
    sc = afternoon(d, spec, _events(seed), hours=4.25, strategy=strategy)
    s = await replay(sc, d / "out", strategy=strategy)
    ev = s["events"][0]
    return {
        "seed": seed,
        "strategy": strategy,
        "min_interval_ratio": ev["min_interval_ratio"],
        "delivered_ratio": ev["delivered_ratio"],
        "reported_delivered_ratio": ev["reported_delivered_ratio"],
        "comfort_violation_degC_h": s["comfort_violation_degC_h"],
        "unmet_ev_kwh": s["unmet_ev_kwh"],
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    worst = [r["min_interval_ratio"] for r in rows if r["min_interval_ratio"] is not None]
    if not worst:
        return {"scenarios": len(rows)}
    low = min(rows, key=lambda r: r["min_interval_ratio"] or 0.0)
    return {
        "scenarios": len(rows),
        "worst_interval": {
            "worst": round(min(worst), 3),
            "p5": round(_percentile(worst, 0.05), 3),
            "median": round(statistics.median(worst), 3),
        },
        "worst_seed": low["seed"],
        "below_95_pct": sum(1 for w in worst if w < 0.95),
        "delivered_ratio_median": round(statistics.median(r["delivered_ratio"] for r in rows), 3),
        "comfort_degc_h_max": max(r["comfort_violation_degC_h"] for r in rows),
        "unmet_ev_kwh_max": max(r["unmet_ev_kwh"] for r in rows),
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", type=int, default=100)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--strategies", default="optimiser,rules")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    configure_logging(level="WARNING")
    strategies = args.strategies.split(",")
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in strategies}
    wall0, cpu0 = time.perf_counter(), _cpu_s()
    with tempfile.TemporaryDirectory(prefix="vpp-delivery-") as tmp:
        for seed in range(args.first_seed, args.first_seed + args.scenarios):
            for strategy in strategies:
                row = await _one(seed, strategy, Path(tmp))
                rows[strategy].append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    result = {
        "strategies": {s: _summary(r) for s, r in rows.items()},
        "wall_s": round(time.perf_counter() - wall0, 1),
        "cpu_s": round(_cpu_s() - cpu0, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    asyncio.run(main())
