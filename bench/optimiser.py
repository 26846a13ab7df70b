"""Optimiser bench: the Pyomo planner against the same LP built with highspy's array API.

For N = 10, 100, 1000 assets (a third each of batteries, EV sessions and thermal zones) over
96 steps: model build, first solve, extraction, an MPC re-plan (new SoC/temperatures,
shifted forecasts and prices, a DR event), and the raw highspy build, solve and warm
re-solve of the same update. Then HiGHS option variants on the raw model.
Run: `python bench/optimiser.py [--json] [--sizes 10,100]`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

# This file is named like the package it measures: take bench/ off the path, put the repo on.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from optimiser import (  # noqa: E402
    BatteryAsset,
    DrEvent,
    EvSession,
    Planner,
    Problem,
    SiteForecast,
    ThermalZoneAsset,
    TimeGrid,
)
from optimiser.blocks import to_blocks  # noqa: E402
from optimiser.layout import make_data, make_layout  # noqa: E402
from optimiser.reference import RawHighsLp  # noqa: E402

START = datetime(2026, 7, 1, tzinfo=UTC)
STEPS = 96


def make_problem(n_assets: int, shift: int = 0, seed: int = 1, event: bool = False) -> Problem:
    """A summer office site with n_assets flexible assets; `shift` steps later in the day."""
    rng = np.random.default_rng(seed)
    k = np.arange(STEPS) + shift
    hour = (k * 0.25) % 24
    price = np.where((hour >= 8) & (hour < 11) | (hour >= 18) & (hour < 21), 0.32, 0.12)
    price = np.where((hour >= 23) | (hour < 6), 0.05, price) + 0.01 * np.sin(k / 7.0)
    out = 28 + 6 * np.sin((hour - 9) / 24 * 2 * math.pi)
    pv = np.maximum(0.0, np.sin((hour - 6) / 12 * math.pi)) * 2.0 * n_assets
    base = 3.0 * n_assets * (0.6 + 0.4 * ((hour > 7) & (hour < 19)))
    nb = n_assets // 3
    ne = n_assets // 3
    nz = n_assets - nb - ne
    assets: list = []
    for i in range(nb):
        assets.append(
            BatteryAsset(
                id=f"bat{i}",
                capacity_kwh=float(rng.uniform(20, 200)),
                charge_max_kw=float(rng.uniform(10, 50)),
                discharge_max_kw=float(rng.uniform(10, 50)),
                soc_kwh=float(rng.uniform(5, 20)) + shift * 0.1,
                soc_min_kwh=2.0,
                terminal_value=0.08,
            )
        )
    for i in range(ne):
        arr = int(rng.integers(0, 60))
        assets.append(
            EvSession(
                id=f"ev{i}",
                arrival_step=max(0, arr - shift),
                departure_step=max(0, arr + 40 - shift),
                energy_kwh=float(rng.uniform(5, 40)),
                max_kw=float(rng.choice([7.4, 11.0, 22.0])),
            )
        )
    for i in range(nz):
        assets.append(
            ThermalZoneAsset(
                id=f"zone{i}",
                r_k_per_kw=float(rng.uniform(5, 15)),
                c_kwh_per_k=float(rng.uniform(0.5, 3.0)),
                cop=float(rng.uniform(3, 5)),
                max_kw=float(rng.uniform(3, 10)),
                temp_c=float(rng.uniform(24, 26)) + shift * 0.01,
                comfort_min_c=[22.0] * STEPS,
                comfort_max_c=[26.0] * STEPS,
                internal_gain_kw=(1.5 * ((hour > 8) & (hour < 18)) + 0.3).tolist(),
            )
        )
    events = []
    baseline = None
    if event:
        events.append(
            DrEvent(
                kind="curtail_kw",
                start=START + timedelta(hours=14),
                end=START + timedelta(hours=16),
                value=0.5 * n_assets,
            )
        )
        baseline = base.tolist()
    site = SiteForecast(
        base_load_kw=base.tolist(),
        pv_kw=pv.tolist(),
        outdoor_temp_c=out.tolist(),
        import_price=price.tolist(),
        export_price=(0.5 * price).tolist(),
        import_limit_kw=20.0 * n_assets,
        export_limit_kw=5.0 * n_assets,
        demand_charge=0.5,
    )
    return Problem(
        grid=TimeGrid(start=START, steps=STEPS),
        site=site,
        assets=assets,
        events=events,
        baseline_kw=baseline,
    )


def _raw_data(problem: Problem):  # type: ignore[no-untyped-def]
    lay = make_layout(problem, to_blocks(problem))
    return lay, make_data(problem, lay)


def bench_size(n_assets: int) -> dict[str, float]:
    first = make_problem(n_assets)
    second = make_problem(n_assets, shift=1, event=True)
    planner = Planner()
    s1 = planner.plan(first)
    assert not s1.fallback, s1.reason
    s2 = planner.plan(second)
    assert not s2.fallback and planner.builds == 1, s2.reason
    # The raw limit: same LP, same data, same update, in the same run.
    t0 = time.perf_counter()
    lay, data = _raw_data(first)
    raw = RawHighsLp(lay, data)
    t1 = time.perf_counter()
    raw_obj = raw.solve()
    t2 = time.perf_counter()
    _, data2 = _raw_data(second)
    raw.update(data2)
    raw_obj2 = raw.solve()
    t3 = time.perf_counter()
    raw_run = raw.h.getRunTime()
    tm1, tm2 = s1.timings, s2.timings
    return {
        "n_assets": n_assets,
        "build_s": tm1.build_s,
        "solve_s": tm1.solve_s,
        "extract_s": tm1.extract_s,
        "replan_s": tm2.update_s + tm2.solve_s + tm2.extract_s,
        "raw_build_s": t1 - t0,
        "raw_solve_s": t2 - t1,
        "raw_resolve_s": t3 - t2,
        "objective": s1.objective,
        "raw_objective": raw_obj,
        "replan_objective": s2.objective,
        "raw_replan_objective": raw_obj2,
        "highs_run_s": tm1.solver_run_s,
        "highs_rerun_s": tm2.solver_run_s,
        "raw_highs_total_run_s": raw_run,
    }


OPTION_TIME_LIMIT_S = 60.0
OPTION_SETS: dict[str, dict[str, bool | int | float | str]] = {
    "default": {},
    "dual simplex, serial": {"solver": "simplex", "simplex_strategy": 1},
    "dual simplex, PAMI 2 threads": {"solver": "simplex", "simplex_strategy": 2, "threads": 2},
    "primal simplex": {"solver": "simplex", "simplex_strategy": 4},
    "simplex, presolve off": {"solver": "simplex", "presolve": "off"},
    "ipm": {"solver": "ipm"},
    "ipm, no crossover": {"solver": "ipm", "run_crossover": "off"},
    "pdlp": {"solver": "pdlp"},
}


def bench_options(n_assets: int) -> dict[str, dict[str, float | bool | None]]:
    """Cold solve and warm re-solve (the bench's MPC update) of the raw LP under each option
    set, on the same data; `exact`: objectives within 1e-6 of the default's."""
    lay, data = _raw_data(make_problem(n_assets))
    _, data2 = _raw_data(make_problem(n_assets, shift=1, event=True))
    ref = RawHighsLp(lay, data)
    ref_obj = ref.solve()
    ref.update(data2)
    ref_obj2 = ref.solve()
    out: dict[str, dict[str, float | bool | None]] = {}
    for name, opts in OPTION_SETS.items():
        raw = RawHighsLp(lay, data, {**opts, "time_limit": OPTION_TIME_LIMIT_S})
        res: dict[str, float | bool | None] = {"solve_s": None, "resolve_s": None}
        out[name] = res
        try:
            t0 = time.perf_counter()
            obj = raw.solve()
            t1 = time.perf_counter()
            raw.update(data2)
            obj2 = raw.solve()
            t2 = time.perf_counter()
        except RuntimeError:  # time limit: recorded as not finished (null)
            continue
        res.update(solve_s=t1 - t0, resolve_s=t2 - t1)
        res["exact"] = all(
            abs(a - b) <= 1e-6 * max(1.0, abs(b)) for a, b in ((obj, ref_obj), (obj2, ref_obj2))
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--no-options", action="store_true", help="skip the HiGHS option sweep")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    results = {}
    for n in sizes:
        r = bench_size(n)
        if not args.no_options:
            r["options_s"] = bench_options(n)  # type: ignore[assignment]
        results[str(n)] = r
        if args.json:
            print(f"N={n} done", file=sys.stderr, flush=True)
        else:
            first = (r["build_s"] + r["solve_s"] + r["extract_s"]) / (
                r["raw_build_s"] + r["raw_solve_s"]
            )
            rel = abs(r["objective"] - r["raw_objective"]) / max(1.0, abs(r["raw_objective"]))
            print(
                f"N={n:5d} build {r['build_s']:.3f}s solve {r['solve_s']:.3f}s "
                f"extract {r['extract_s']:.3f}s replan {r['replan_s']:.3f}s | raw build "
                f"{r['raw_build_s']:.3f}s solve {r['raw_solve_s']:.3f}s resolve "
                f"{r['raw_resolve_s']:.3f}s | first/raw {first:.2f}x replan/raw "
                f"{r['replan_s'] / r['raw_resolve_s']:.2f}x | obj rel diff {rel:.1e}\n"
                f"        HiGHS run: pyomo {r['highs_run_s']:.3f}s + {r['highs_rerun_s']:.3f}s,"
                f" raw {r['raw_highs_total_run_s']:.3f}s in total"
            )
            if "options_s" in r:
                for k, v in r["options_s"].items():  # type: ignore[union-attr]
                    if v["solve_s"] is None:
                        print(f"        {k:30s} not finished in {OPTION_TIME_LIMIT_S:.0f} s")
                        continue
                    mark = "" if v.get("exact", False) else "  (objective not within 1e-6)"
                    print(
                        f"        {k:30s} solve {v['solve_s']:.3f}s"
                        f" warm re-solve {v['resolve_s']:.3f}s{mark}",
                        flush=True,
                    )
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
