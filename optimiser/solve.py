"""Persistent HiGHS solve of a PyomoLp through Pyomo's APPSI interface.

The HiGHS model is built from the Pyomo model once (`set_instance`, with a fast path for the
rows PyomoLp made); later solves push the model's changed numbers (Params, Var bounds) in a
few array calls (`push`, equal to APPSI's own update, which a test checks) and re-solve warm
from the previous basis. The solution is read as arrays straight from HiGHS, indexed by the
column of each Pyomo variable.
Binaries for charge/discharge exclusivity are added as a small temporary block only for the
steps whose LP answer charges and discharges at once (domain.md §6), then removed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np
import pyomo.environ as pyo
from pyomo.common.timing import HierarchicalTimer
from pyomo.contrib.appsi.base import TerminationCondition
from pyomo.contrib.appsi.solvers import Highs
from pyomo.contrib.appsi.solvers.highs import _MutableConstraintBounds
from pyomo.core.expr.numeric_expr import LinearExpression
from pyomo.core.expr.numvalue import is_constant, value

from optimiser.inputs import SolverOptions
from optimiser.pyomo_model import PyomoLp

log = logging.getLogger(__name__)

BOTH_TOL_KW = 1e-6  # both flows above this in one step count as simultaneous


@dataclass
class Solution:
    """Primal values as arrays shaped like the layout; `ok` False when none is usable."""

    ok: bool
    status: str
    objective: float
    arrays: dict[str, np.ndarray]
    solve_s: float
    mip: bool = False


class _Highs(Highs):
    """APPSI HiGHS with the C++ expression walker kept on (its `_reinit` turns it off)."""

    def __init__(self, only_child_vars: bool = False) -> None:
        super().__init__(only_child_vars=only_child_vars)
        self.use_extensions = True
        self.row_terms: dict[int, tuple[list[float], list[Any]]] = {}

    def _reinit(self) -> None:
        terms = self.row_terms
        super()._reinit()
        self.use_extensions = True
        self.row_terms = terms

    def _add_constraints(self, cons: list[Any]) -> None:
        """APPSI's `_add_constraints`, with a fast path for the rows PyomoLp made: their
        terms (`row_terms`, recorded while building the very LinearExpression that is the
        row's body) or, for other `LinearExpression` rows with numeric coefficients and
        distinct variables, the expression's own terms, instead of `generate_standard_repn`.
        Other rows go the standard way."""
        fast = []
        slow = []
        row_terms = self.row_terms
        for con in cons:
            known = row_terms.get(id(con))
            if known is not None:
                fast.append((con, 0.0, known[0], known[1]))
                continue
            body = con.body
            if type(body) is LinearExpression:
                coefs = body.linear_coefs
                xs = body.linear_vars
                if all(type(c) is float or type(c) is int for c in coefs) and len(
                    {id(x) for x in xs}
                ) == len(xs):
                    fast.append((con, body.constant, coefs, xs))
                    continue
            slow.append(con)
        if slow:
            super()._add_constraints(slow)
        if not fast:
            return
        self._sol = None
        if self._last_results_object is not None:
            self._last_results_object.solution_loader.invalidate()
        vmap = self._pyomo_var_to_solver_var_map
        cmap = self._pyomo_con_to_solver_con_map
        row = len(cmap)
        lbs: list[float] = []
        ubs: list[float] = []
        starts: list[int] = []
        index: list[int] = []
        values: list[float] = []
        for con, const, coefs, xs in fast:
            starts.append(len(values))
            index.extend(vmap[id(x)] for x in xs)
            values.extend(coefs)
            lb = con.lower - const if con.has_lb() else -highspy.kHighsInf
            ub = con.upper - const if con.has_ub() else highspy.kHighsInf
            if not is_constant(lb) or not is_constant(ub):
                helper = _MutableConstraintBounds(lb, ub, con, cmap, self._solver_model)
                self._mutable_helpers.setdefault(con, []).append(helper)
            lbs.append(value(lb))
            ubs.append(value(ub))
            cmap[con] = row
            self._solver_con_to_pyomo_con_map[row] = con
            row += 1
        self._solver_model.addRows(
            len(lbs),
            np.array(lbs, dtype=np.double),
            np.array(ubs, dtype=np.double),
            len(values),
            np.array(starts),
            np.array(index),
            np.array(values, dtype=np.double),
        )


class HighsSession:
    """One persistent APPSI HiGHS solver bound to one PyomoLp."""

    def __init__(self, lp: PyomoLp) -> None:
        self.lp = lp
        # only_child_vars: every Var of the model is handed over in one batch (else APPSI
        # adds them constraint by constraint); use_extensions: walk expressions in C++.
        self.opt = _Highs(only_child_vars=True)
        self.opt.row_terms = lp.row_terms
        self.opt.config.stream_solver = False
        self.opt.config.log_level = logging.DEBUG  # HiGHS's log: debug detail, not app INFO
        self.opt.config.load_solution = False
        uc = self.opt.update_config
        # The structure never changes between plans: only the Params' values do.
        uc.check_for_new_or_removed_constraints = False
        uc.check_for_new_or_removed_vars = False
        uc.check_for_new_or_removed_params = False
        uc.check_for_new_objective = False
        uc.update_constraints = False
        uc.update_vars = False
        uc.update_named_expressions = False
        uc.update_objective = False
        # Params are pushed to HiGHS in bulk by `push` (APPSI would call HiGHS once per
        # bound); tests check that the two give the same HiGHS model.
        uc.update_params = False
        self._cols: dict[str, np.ndarray] | None = None
        self._instance_set = False

    def attach(self) -> None:
        """Hand the Pyomo model to HiGHS (the first, expensive step)."""
        self.opt.set_instance(self.lp.model)
        self._instance_set = True
        self._cols = self._column_indices()
        cmap: dict[Any, int] = self.opt._pyomo_con_to_solver_con_map
        m = self.lp.model
        self._rows = {
            name: np.fromiter((cmap[c] for c in getattr(m, name).values()), dtype=np.int32)
            for name in ("dyn", "bal", "dr", "req", "fl")
        }

    def push(self) -> None:
        """Copy the model's current numbers (PyomoLp.data: Params and Var bounds) into the
        HiGHS model in a few array calls: the bulk equivalent of APPSI's `update_params` and
        `update_variables`."""
        assert self._cols is not None
        h, d, lay = self.opt._solver_model, self.lp.data, self.lp.layout
        n, dt = lay.n, lay.dt
        c, r = self._cols, self._rows
        zeros, inf = np.zeros(n), np.full(n, np.inf)

        def cols(idx: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
            if len(idx):
                h.changeColsBounds(len(idx), idx.astype(np.int32), lo, hi)

        def rows(idx: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
            if len(idx):
                h.changeRowsBounds(len(idx), idx, lo, hi)

        mut = self.lp._mut_ports
        if len(mut):
            pc = c["P"].reshape(len(lay.ports), n)[mut].reshape(-1)
            cols(pc, np.zeros(len(pc)), d.p_ub[mut].reshape(-1))
        cols(c["Y"], d.y_lo.ravel(), d.y_hi.ravel())
        cols(c["imp"], zeros, np.full(n, d.imp_lim))
        cols(c["exp"], zeros, d.exp_lim.astype(float))
        cols(c["curt"], zeros, d.pv.astype(float))
        cols(c["peak"], np.array([d.peak_lb]), np.array([np.inf]))
        dyn = d.dyn_rhs.ravel()
        rows(r["dyn"], dyn, dyn)
        rows(r["bal"], d.bal_rhs, d.bal_rhs)
        rows(r["dr"], -inf, d.cap.astype(float))
        rows(r["req"], d.req_rhs.astype(float), np.full(len(d.req_rhs), np.inf))
        rows(r["fl"], d.floor.astype(float), inf)
        ci = (d.price_imp + d.carbon_imp) * dt
        idx = np.concatenate([c["imp"], c["over"], c["exp"], c["peak"]]).astype(np.int32)
        cost = np.concatenate(
            [ci, ci + lay.pen_over * dt, -d.price_exp * dt, np.array([d.demand_charge])]
        )
        neutral = [i for i, p in enumerate(lay.ports) if p.price_neutral]
        if neutral:
            pcols = c["P"].reshape(len(lay.ports), n)
            idx = np.concatenate([idx, pcols[neutral].reshape(-1).astype(np.int32)])
            extra = [lay.ports[i].cost_per_kwh * dt + ci for i in neutral]
            cost = np.concatenate([cost, *extra])
        h.changeColsCost(len(idx), idx, cost)

    def _column_indices(self) -> dict[str, np.ndarray]:
        # APPSI keeps id(var) -> HiGHS column; reading it avoids a ComponentMap per solve.
        vmap: dict[int, int] = self.opt._pyomo_var_to_solver_var_map
        m = self.lp.model
        cols = {}
        for name in ("P", "Y", "H", "L", "R", "imp", "over", "exp", "curt", "short", "under"):
            comp = getattr(m, name)
            cols[name] = np.fromiter((vmap[id(v)] for v in comp.values()), dtype=np.int64)
        cols["peak"] = np.array([vmap[id(m.peak)]], dtype=np.int64)
        return cols

    def solve(self, options: SolverOptions) -> Solution:
        """Solve (first call attaches, later ones update Params and re-solve warm)."""
        opt = self.opt
        opt.config.mip_gap = options.mip_rel_gap
        opt.highs_options = dict(options.highs)
        timer = HierarchicalTimer()
        if not self._instance_set:
            self.attach()
        else:
            self.push()
        before = self._limit(options)
        res = opt.solve(self.lp.model, timer=timer)
        return self._read(res, before)

    def _limit(self, options: SolverOptions) -> float:
        """Set this solve's time limit and return HiGHS's run clock now. HiGHS compares
        `time_limit` with a run clock that accumulates over the Highs object's lifetime, so
        a per-solve limit is the clock's reading plus the limit."""
        before = float(self.opt._solver_model.getRunTime())
        self.opt.config.time_limit = before + options.time_limit_s
        return before

    def _read(self, res: Any, before: float = 0.0) -> Solution:
        tc = res.termination_condition
        h = self.opt._solver_model
        run_s = float(h.getRunTime()) - before  # HiGHS's run clock accumulates
        # Only an optimum is a plan: a solve stopped by its time or iteration limit holds an
        # unfinished point (in a probe 180 kW over power limits), whatever HiGHS calls it.
        if tc != TerminationCondition.optimal:
            return Solution(False, str(tc.name), float("nan"), {}, run_s)
        assert self._cols is not None
        x = np.asarray(h.getSolution().col_value)
        lay = self.lp.layout
        n = lay.n
        arrays = {k: x[c] for k, c in self._cols.items()}
        arrays["P"] = arrays["P"].reshape(len(lay.ports), n)
        arrays["Y"] = arrays["Y"].reshape(len(lay.storage_block), n)
        arrays["H"] = arrays["H"].reshape(lay.n_soft, n)
        arrays["L"] = arrays["L"].reshape(lay.n_soft, n)
        return Solution(True, str(tc.name), float(res.best_feasible_objective), arrays, run_s)

    def simultaneous_steps(self, sol: Solution) -> list[tuple[int, int, int]]:
        """(first port, second port, step) where a complementary pair both flow."""
        lay = self.lp.layout
        out: list[tuple[int, int, int]] = []
        P = sol.arrays["P"]
        first: dict[int, int] = {}
        for i, b in enumerate(lay.port_block):
            first.setdefault(b, i)
        for b, blk in enumerate(lay.blocks):
            if blk.complementary is None:
                continue
            i = first[b] + blk.complementary[0]
            j = first[b] + blk.complementary[1]
            both = np.nonzero((P[i] > BOTH_TOL_KW) & (P[j] > BOTH_TOL_KW))[0]
            out.extend((i, j, int(t)) for t in both)
        return out

    def site_simultaneous(self, sol: Solution) -> list[int]:
        """Steps where the site both imports and exports."""
        a = sol.arrays
        both = ((a["imp"] + a["over"]) > BOTH_TOL_KW) & (a["exp"] > BOTH_TOL_KW)
        return [int(t) for t in np.nonzero(both)[0]]

    def solve_with_binaries(
        self, pairs: list[tuple[int, int, int]], site_steps: list[int], options: SolverOptions
    ) -> Solution:
        """Re-solve as a MIP with a binary per listed step (`Pc ≤ Pc_max·u`,
        `Pd ≤ Pd_max·(1−u)`; the same for site import/export), then drop the binaries."""
        m, lay, n = self.lp.model, self.lp.layout, self.lp.layout.n
        blk = pyo.Block()
        m.exclusive = blk
        k_all = len(pairs) + len(site_steps)
        blk.u = pyo.Var(range(k_all), domain=pyo.Binary)
        rows: list[Any] = []
        for k, (i, j, t) in enumerate(pairs):
            rows.append(m.P[i * n + t] - lay.ports[i].rated_kw * blk.u[k] <= 0.0)
            rows.append(m.P[j * n + t] + lay.ports[j].rated_kw * blk.u[k] <= lay.ports[j].rated_kw)
        imp_lim, exp_lim = self.lp.data.imp_lim, self.lp.data.exp_lim
        for k, t in enumerate(site_steps, start=len(pairs)):
            rows.append(m.imp[t] - imp_lim * blk.u[k] <= 0.0)
            rows.append(m.exp[t] + float(exp_lim[t]) * blk.u[k] <= float(exp_lim[t]))
        return self._solve_block(blk, rows, options)

    def _solve_block(self, blk: Any, rows: list[Any], options: SolverOptions) -> Solution:
        """Solve the model with `blk` (its binaries, and `rows` as its constraints) added,
        then remove it."""
        m = self.lp.model
        blk.rows = pyo.Constraint(range(len(rows)), rule=lambda _b, r: rows[r])
        self.opt.add_block(blk)
        try:
            # HiGHS's MIP default (1e-6) lets a binary sit at 1e-6 and both flows trickle:
            # keep the answer as exact as the LP's.
            self.opt.highs_options = {**options.highs, "mip_feasibility_tolerance": 1e-9}
            before = self._limit(options)
            res = self.opt.solve(m)
            sol = self._read(res, before)
            sol.mip = True
            return sol
        finally:
            self.opt.remove_block(blk)
            m.del_component(blk)
            # The MIP left HiGHS without a basis worth reusing; keep the LP as the next start.
            self.opt._solver_model.clearSolver()

    def solve_on_off(self, rules: dict[str, tuple[int, int]], options: SolverOptions) -> Solution:
        """Re-solve as a MIP where every port of each asset of `rules` is all or nothing in
        each step (`P = ub·z`, z binary: a load shed whole or not at all), its runs at most
        `rules[id][0]` steps and its rests at least `rules[id][1]`, then drop the binaries.
        `Solution.ok` only at an optimum (within `mip_rel_gap`). The charge/discharge
        binaries are not kept: an answer may use both flows at once (a relaxation)."""
        m, lay, n = self.lp.model, self.lp.layout, self.lp.layout.n
        ub = self.lp.data.p_ub
        ids = [lay.blocks[b].asset_id for b in lay.port_block]
        ports = [(i, rules[a]) for i, a in enumerate(ids) if a in rules]
        blk = pyo.Block()
        m.on_off = blk
        blk.z = pyo.Var(range(len(ports) * n), domain=pyo.Binary)
        rows: list[Any] = []
        for k, (i, (run, rest)) in enumerate(ports):
            z = [blk.z[k * n + t] for t in range(n)]
            rows += [m.P[i * n + t] - float(ub[i, t]) * z[t] == 0.0 for t in range(n)]
            # Runs: every run + 1 steps hold one unshed.
            rows += [sum(z[t : t + run + 1]) <= run for t in range(n - run)]
            # Rests: released after step t-1 (z[t-1] = 1, z[t] = 0), unshed for `rest` steps.
            rows += [
                z[t - 1] - z[t] + z[t + j] <= 1
                for t in range(1, n)
                for j in range(1, min(rest, n - t))
            ]
        return self._solve_block(blk, rows, options)
