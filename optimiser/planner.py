"""The receding-horizon planner: one Pyomo model and one persistent HiGHS kept across plans.

`Planner.plan(problem)` rebuilds only when the structure changes (asset set, ratings, grid
length, penalties); otherwise it writes the new numbers into the model's mutable Params and
re-solves warm. It never raises for a valid Problem: any failure (build error, solver error,
time-out, a solution that is not optimal or fails its validity check, optimiser.validate)
returns the fallback heuristic, marked `fallback=True` with the reason.
"""

from __future__ import annotations

import logging
import math
import time

from pyomo.common.gc_manager import PauseGC

from optimiser.blocks import to_blocks
from optimiser.fallback import fallback_schedule
from optimiser.inputs import CurtailableLoadAsset, Problem
from optimiser.layout import Data, Layout, make_data, make_layout
from optimiser.pyomo_model import PyomoLp
from optimiser.schedule import CostBreakdown, Schedule, Timings, assemble
from optimiser.solve import HighsSession, Solution
from optimiser.validate import violations

log = logging.getLogger(__name__)

MAX_ROUNDS = 3  # MIP rounds with step-wise binaries before binaries on every step


class Planner:
    """Persistent MPC planner. Not thread-safe: one caller at a time."""

    def __init__(self) -> None:
        self._lp: PyomoLp | None = None
        self._session: HighsSession | None = None
        self.builds = 0  # how many times the model was built (for tests and metrics)

    def plan(self, problem: Problem, on_off: frozenset[str] = frozenset()) -> Schedule:
        """A schedule for `problem`: optimal, or the fallback heuristic if the solve fails.

        `on_off`: assets whose ports are all or nothing in each step (a MIP after the LP).
        When that MIP stops short of its optimum the LP's answer is returned, its status
        `relaxed: <why>` (a relaxation: no better plan exists, but it may not be doable)."""
        tm = Timings()
        # perf_counter measures our own compute time only; it is not a clock of the plant.
        t0 = time.perf_counter()
        try:
            blocks = to_blocks(problem)
            layout = make_layout(problem, blocks)
            data = make_data(problem, layout)
        except Exception as exc:  # the fallback below needs none of this
            log.exception("optimiser: cannot prepare the problem")
            return _last_resort(problem, f"prepare failed: {exc}")
        try:
            with PauseGC():  # the build makes ~10 objects per variable: no GC passes meanwhile
                sol = self._build_and_solve(problem, layout, data, tm, t0, on_off)
            t2 = time.perf_counter()
        except Exception as exc:
            log.exception("optimiser: build or solve failed; using the fallback")
            self._lp = None
            self._session = None
            return _timed(fallback_schedule(layout, data, f"error: {exc}"), tm, t0)
        if not sol.ok:
            log.warning("optimiser: no optimum (%s); using the fallback", sol.status)
            return _timed(fallback_schedule(layout, data, f"solver: {sol.status}"), tm, t0)
        bad = violations(layout, data, sol.arrays)
        if bad:
            log.error("optimiser: the optimum fails its check (%s); using the fallback", bad[0])
            return _timed(fallback_schedule(layout, data, f"invalid plan: {bad[0]}"), tm, t0)
        sched = assemble(layout, data, sol.arrays, status=sol.status)
        tm.extract_s = time.perf_counter() - t2
        sched.timings = tm
        return sched

    def _build_and_solve(
        self,
        problem: Problem,
        layout: Layout,
        data: Data,
        tm: Timings,
        t0: float,
        on_off: frozenset[str] = frozenset(),
    ) -> Solution:
        """Rebuild if the structure changed, else update; solve; enforce exclusivity."""
        if self._lp is None or self._lp.layout.signature != layout.signature:
            tm.rebuilt = True
            self._session = None
            self._lp = None
            self._lp = PyomoLp(layout, data)
            self._session = HighsSession(self._lp)
            self.builds += 1
            t1 = time.perf_counter()
            tm.build_s = t1 - t0
        else:
            self._lp.layout = layout
            self._lp.set_data(data)
            t1 = time.perf_counter()
            tm.update_s = t1 - t0
        assert self._session is not None
        sol = self._session.solve(problem.solver)
        if sol.ok:
            sol = self._exclusive(sol, problem)
        rules = _on_off_rules(problem, on_off) if sol.ok else {}
        if rules:
            mip = self._session.solve_on_off(rules, problem.solver)
            if mip.ok:
                sol = mip
            else:
                log.warning(
                    "optimiser: all-or-nothing MIP %s; the LP relaxation stands", mip.status
                )
                sol.status = f"relaxed: {mip.status}"
        tm.solve_s = time.perf_counter() - t1
        tm.solver_run_s = sol.solve_s
        return sol

    def _exclusive(self, sol: Solution, problem: Problem) -> Solution:
        """Add binaries where the answer charges and discharges (or imports and exports) in
        one step, and re-solve; the MIP may move the flows to other steps, so repeat with
        the union, and after MAX_ROUNDS put binaries on every step of those pairs."""
        assert self._session is not None
        session = self._session
        pairs: set[tuple[int, int, int]] = set()
        site: set[int] = set()
        for rnd in range(MAX_ROUNDS + 1):
            new_pairs = set(session.simultaneous_steps(sol)) - pairs
            new_site = set(session.site_simultaneous(sol)) - site
            if not new_pairs and not new_site:
                return sol
            pairs |= new_pairs
            site |= new_site
            if rnd == MAX_ROUNDS - 1:
                n = session.lp.layout.n
                pairs |= {(i, j, t) for i, j, _ in pairs for t in range(n)}
                site |= set(range(n)) if site else set()
            sol = session.solve_with_binaries(sorted(pairs), sorted(site), problem.solver)
            if not sol.ok:
                return sol
        return Solution(False, "exclusivity not reached", float("nan"), {}, sol.solve_s)


def _on_off_rules(problem: Problem, on_off: frozenset[str]) -> dict[str, tuple[int, int]]:
    """Each all-or-nothing load's longest run and shortest rest, in whole steps (a switch on
    a step's boundary: a run of at most max_duration_h, a rest of at least min_rest_h)."""
    dt = problem.grid.dt_h
    return {
        a.id: (math.floor(a.max_duration_h / dt + 1e-9), math.ceil(a.min_rest_h / dt - 1e-9))
        for a in problem.assets
        if isinstance(a, CurtailableLoadAsset) and a.id in on_off
    }


def _timed(s: Schedule, tm: Timings, t0: float) -> Schedule:
    tm.extract_s = time.perf_counter() - t0 - tm.build_s - tm.update_s - tm.solve_s
    s.timings = tm
    return s


def _last_resort(problem: Problem, reason: str) -> Schedule:
    """Every asset at zero power; site import = base load − PV (used only if even the
    adapters fail)."""
    n = problem.grid.steps
    net = [b - p for b, p in zip(problem.site.base_load_kw, problem.site.pv_kw, strict=True)]
    return Schedule(
        status="fallback",
        fallback=True,
        power_kw={a.id: [0.0] * n for a in problem.assets},
        soc_kwh={},
        temperature_c={},
        site_import_kw=net,
        pv_curtailed_kw=[0.0] * n,
        dr_shortfall_kw=[0.0] * n,
        cost=CostBreakdown(),
        slacks={},
        objective=float("nan"),
        reason=reason,
    )


__all__ = ["Planner"]
