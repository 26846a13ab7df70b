"""Delivery bench: generated days (vpp.replay.generate, one per seed, cut to the first event:
the event's afternoon), each replayed through the agent with the optimiser and with the rule
strategy, measured against the counterfactual and judged against the perfect-foresight oracle.
Prints per strategy the distribution of the worst interval's feasible ratio (delivered ÷
min(request, oracle): worst, 5th percentile, median), that of the plain delivered ratio, the
share of events the oracle can deliver in full, the oracle's honesty (the most any interval
delivered above it, in % of the request), comfort and unmet EV energy, with CPU seconds
(this process and its children), wall seconds and the load average beside.

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

import yaml  # noqa: E402

from vpp.log import configure_logging  # noqa: E402
from vpp.replay.generate import draw, scenario_data, site_data  # noqa: E402
from vpp.replay.runner import COUNTERFACTUAL, STORE, replay  # noqa: E402
from vpp.replay.scenario import load_scenario  # noqa: E402
from vpp.replay.summary import event_reports  # noqa: E402


def _cpu_s() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


async def _one(seed: int, strategy: str, tmp: Path) -> dict[str, Any]:
    d = tmp / f"{seed}-{strategy}"
    d.mkdir(parents=True)
    gen = draw(seed).first_event_only()
    (d / "site.yaml").write_text(yaml.safe_dump(site_data(gen.spec), sort_keys=False))
    data = scenario_data(gen, "site.yaml", strategy=strategy)
    (d / "scenario.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    sc = load_scenario(d / "scenario.yaml")
    wall0 = time.perf_counter()
    s = await replay(sc, d / "out", strategy=strategy)
    wall = time.perf_counter() - wall0
    ev = s["events"][0]
    reports = event_reports(d / "out" / STORE, sc, d / "out" / COUNTERFACTUAL / STORE)
    above = [
        (iv.delivered_kw - o) / iv.requested_kw
        for iv, o in zip(reports[ev["event_id"]].intervals, ev["oracle_kw"] or [], strict=False)
        if iv.delivered_kw is not None and iv.requested_kw and o is not None
    ]
    return {
        "seed": seed,
        "strategy": strategy,
        "kind": gen.spec.kind,
        "signal": ev["signal"],
        "simulated_h": round(sc.duration.total_seconds() / 3600, 2),
        "wall_s": round(wall, 1),
        "min_feasible_ratio": ev["min_feasible_ratio"],
        "min_interval_ratio": ev["min_interval_ratio"],
        "oracle_full_request": ev["oracle_full_request"],
        "above_oracle_pct": round(100 * max(above), 1) if above else None,
        "delivered_ratio": ev["delivered_ratio"],
        "reported_delivered_ratio": ev["reported_delivered_ratio"],
        "comfort_violation_degC_h": s["comfort_violation_degC_h"],
        "unmet_ev_kwh": s["unmet_ev_kwh"],
    }


def _distribution(values: list[float]) -> dict[str, float]:
    return {
        "worst": round(min(values), 3),
        "p5": round(_percentile(values, 0.05), 3),
        "median": round(statistics.median(values), 3),
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    feasible = [r["min_feasible_ratio"] for r in rows if r["min_feasible_ratio"] is not None]
    plain = [r["min_interval_ratio"] for r in rows if r["min_interval_ratio"] is not None]
    if not feasible:
        return {"scenarios": len(rows)}
    low = min(
        rows, key=lambda r: r["min_feasible_ratio"] if r["min_feasible_ratio"] is not None else 9
    )
    above = [r["above_oracle_pct"] for r in rows if r["above_oracle_pct"] is not None]
    full = [r["oracle_full_request"] for r in rows if r["oracle_full_request"] is not None]
    return {
        "scenarios": len(rows),
        "min_feasible_ratio": _distribution(feasible),
        "min_interval_ratio": _distribution(plain) if plain else None,
        "worst_seed": low["seed"],
        "below_95_pct": sorted(r["seed"] for r in rows if (r["min_feasible_ratio"] or 0) < 0.95),
        "oracle_full_request_share": round(sum(full) / len(full), 3) if full else None,
        "most_above_oracle_pct_of_request": max(above) if above else None,
        "comfort_degc_h_max": max(r["comfort_violation_degC_h"] for r in rows),
        "unmet_ev_kwh_max": max(r["unmet_ev_kwh"] for r in rows),
        "wall_s_per_replay_median": statistics.median(r["wall_s"] for r in rows),
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
