"""The Pyomo model of the LP in optimiser.layout, built once per layout with mutable Params.

Rows are made as `LinearExpression`s from precomputed coefficient lists (no per-index rule
expressions, no `+=` chains); all per-plan numbers are mutable Params so a re-plan only
changes values (`set_data`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyomo.environ as pyo
from pyomo.core.expr.numeric_expr import LinearExpression

from optimiser.layout import Data, Layout


def _lin(coefs: list[float], xs: list[Any]) -> LinearExpression:
    return LinearExpression(constant=0.0, linear_coefs=coefs, linear_vars=xs)


class PyomoLp:
    """Pyomo model `model` of `layout`; `set_data` writes a plan's numbers into its Params."""

    def __init__(self, layout: Layout, data: Data) -> None:
        self.layout = layout
        n, dt = layout.n, layout.dt
        ns, np_ = len(layout.storage_block), len(layout.ports)
        m = pyo.ConcreteModel(name="vpp_plan")
        self.model = m
        flat = range(n)

        # ---- mutable data: row right-hand sides and prices are Params; variable bounds are
        # plain numbers on the Vars, re-set by set_data (cheaper to build and to hand over).
        mut_ports = [i for i, p in enumerate(layout.ports) if p.ub_varies]
        self._mut_ports = np.array(mut_ports, dtype=int)
        all_s = list(range(ns * n))
        m.dyn_rhs = pyo.Param(all_s, mutable=True, initialize=_init(data.dyn_rhs.ravel(), all_s))
        nr = len(layout.reqs)
        m.req_rhs = pyo.Param(range(nr), mutable=True, initialize=_init(data.req_rhs, range(nr)))
        m.bal_rhs = pyo.Param(flat, mutable=True, initialize=_init(data.bal_rhs, flat))
        m.cap = pyo.Param(flat, mutable=True, initialize=_init(data.cap, flat))
        m.floor = pyo.Param(flat, mutable=True, initialize=_init(data.floor, flat))
        m.price_imp = pyo.Param(flat, mutable=True, initialize=_init(data.price_imp, flat))
        m.carbon_imp = pyo.Param(flat, mutable=True, initialize=_init(data.carbon_imp, flat))
        m.price_exp = pyo.Param(flat, mutable=True, initialize=_init(data.price_exp, flat))
        m.demand_charge = pyo.Param(mutable=True, initialize=data.demand_charge)

        # ---- variables
        p_ub = data.p_ub.ravel().tolist()
        y_lo, y_hi = data.y_lo.ravel().tolist(), data.y_hi.ravel().tolist()
        pv = data.pv.tolist()
        m.P = pyo.Var(range(np_ * n), bounds=lambda _m, k: (0.0, p_ub[k]))
        m.Y = pyo.Var(all_s, bounds=lambda _m, k: (y_lo[k], y_hi[k]))
        nsoft = layout.n_soft
        m.H = pyo.Var(range(nsoft * n), domain=pyo.NonNegativeReals)
        m.L = pyo.Var(range(nsoft * n), domain=pyo.NonNegativeReals)
        m.R = pyo.Var(range(layout.n_slack), domain=pyo.NonNegativeReals)
        m.imp = pyo.Var(flat, bounds=(0.0, data.imp_lim))
        m.over = pyo.Var(flat, bounds=(0.0, 0.0 if layout.hard_import else None))
        exp_lim = data.exp_lim.tolist()
        m.exp = pyo.Var(flat, bounds=lambda _m, t: (0.0, exp_lim[t]))
        m.curt = pyo.Var(flat, bounds=lambda _m, t: (0.0, pv[t]))
        m.short = pyo.Var(flat, domain=pyo.NonNegativeReals)
        m.under = pyo.Var(flat, domain=pyo.NonNegativeReals)
        m.peak = pyo.Var(bounds=(data.peak_lb, None))

        # Each row's terms, in construction order, kept for the hand-over to HiGHS
        # (`row_terms`: id of the ConstraintData -> (coefficients, variables)).
        self.row_terms: dict[int, tuple[list[float], list[Any]]] = {}
        pending: list[tuple[list[float], list[Any]]] = []

        def lin(c: list[float], v: list[Any]) -> LinearExpression:
            pending.append((c, v))
            return _lin(c, v)

        def record(comp: Any) -> None:
            datas = list(comp.values())
            assert len(datas) == len(pending)
            for con, terms in zip(datas, pending, strict=True):
                self.row_terms[id(con)] = terms
            pending.clear()

        # ---- storage dynamics
        def x_terms(s: int, t: int, scale: float) -> tuple[list[float], list[Any]]:
            k = s * n + t
            soft = layout.soft_of_storage[s]
            if soft < 0:
                return [scale], [m.Y[k]]
            j = soft * n + t
            return [scale, scale, -scale], [m.Y[k], m.H[j], m.L[j]]

        block_ports: dict[int, list[int]] = {}
        for i, b in enumerate(layout.port_block):
            block_ports.setdefault(b, []).append(i)
        dyn: list[Any] = []
        for s, b in enumerate(layout.storage_block):
            storage = layout.blocks[b].storage
            assert storage is not None
            a = storage.decay
            pcoef = [(i, -layout.ports[i].state_coef) for i in block_ports.get(b, [])]
            for t in flat:
                c, v = x_terms(s, t, 1.0)
                if t > 0:
                    c2, v2 = x_terms(s, t - 1, -a)
                    c, v = c + c2, v + v2
                for i, pc in pcoef:
                    if pc != 0.0:
                        c.append(pc)
                        v.append(m.P[i * n + t])
                dyn.append(lin(c, v) == m.dyn_rhs[s * n + t])
        m.dyn = pyo.Constraint(range(len(dyn)), rule=lambda _m, k: dyn[k])
        record(m.dyn)

        # ---- site balance, DR cap, peak
        def bal_rule(_m: Any, t: int) -> Any:
            c = [1.0, 1.0, -1.0, -1.0] + [-p.site_sign for p in layout.ports]
            v = [m.imp[t], m.over[t], m.exp[t], m.curt[t]] + [m.P[i * n + t] for i in range(np_)]
            return lin(c, v) == m.bal_rhs[t]

        m.bal = pyo.Constraint(flat, rule=bal_rule)
        record(m.bal)
        m.dr = pyo.Constraint(
            flat,
            rule=lambda _m, t: lin([1.0, 1.0, -1.0], [m.imp[t], m.over[t], m.short[t]]) <= m.cap[t],
        )
        record(m.dr)
        m.pk = pyo.Constraint(
            flat, rule=lambda _m, t: lin([1.0, -1.0, -1.0], [m.peak, m.imp[t], m.over[t]]) >= 0.0
        )
        record(m.pk)
        m.fl = pyo.Constraint(
            flat,
            rule=lambda _m, t: (
                lin([1.0, 1.0, -1.0, 1.0], [m.imp[t], m.over[t], m.exp[t], m.under[t]])
                >= m.floor[t]
            ),
        )
        record(m.fl)

        # ---- requirements
        req_rows: list[Any] = []
        for r, (b, req) in enumerate(layout.reqs):
            ports_b = block_ports.get(b, [])
            c, v = [], []
            for local, arr in req.coefs.items():
                i = ports_b[local]
                nz = np.nonzero(arr)[0].tolist()
                c.extend(float(arr[t]) for t in nz)
                v.extend(m.P[i * n + t] for t in nz)
            if req.final_coef != 0.0:
                c2, v2 = x_terms(layout.block_storage[b], n - 1, req.final_coef)
                c, v = c + c2, v + v2
            if layout.soft_req[r] >= 0:
                c.append(1.0)
                v.append(m.R[layout.soft_req[r]])
            req_rows.append(lin(c, v) >= m.req_rhs[r])
        m.req = pyo.Constraint(range(len(req_rows)), rule=lambda _m, k: req_rows[k])
        record(m.req)

        # ---- objective (currency over the horizon)
        oc: list[Any] = []
        ov: list[Any] = []
        for t in flat:
            ci = (m.price_imp[t] + m.carbon_imp[t]) * dt
            oc += [ci, ci + layout.pen_over * dt, -m.price_exp[t] * dt, layout.pen_dr * dt]
            ov += [m.imp[t], m.over[t], m.exp[t], m.short[t]]
            oc.append(layout.pen_dr * dt)
            ov.append(m.under[t])
        oc.append(m.demand_charge)
        ov.append(m.peak)
        for i, p in enumerate(layout.ports):
            if p.price_neutral:
                oc += [p.cost_per_kwh * dt + (m.price_imp[t] + m.carbon_imp[t]) * dt for t in flat]
                ov += [m.P[i * n + t] for t in flat]
            elif p.cost_per_kwh != 0.0:
                oc += [p.cost_per_kwh * dt] * n
                ov += [m.P[i * n + t] for t in flat]
        for s, b in enumerate(layout.storage_block):
            storage = layout.blocks[b].storage
            assert storage is not None
            soft = layout.soft_of_storage[s]
            if soft >= 0 and storage.soft_penalty:
                w = storage.soft_penalty * dt
                oc += [w] * (2 * n)
                ov += [m.H[soft * n + t] for t in flat] + [m.L[soft * n + t] for t in flat]
            if storage.terminal_value:
                c, v = x_terms(s, n - 1, -storage.terminal_value)
                oc += c
                ov += v
        for r, (_b, req) in enumerate(layout.reqs):
            if layout.soft_req[r] >= 0 and req.penalty:
                oc.append(req.penalty)
                ov.append(m.R[layout.soft_req[r]])
        m.obj = pyo.Objective(expr=LinearExpression(constant=0.0, linear_coefs=oc, linear_vars=ov))

        self.data = data
        self._series = {
            "dyn_rhs": list(m.dyn_rhs.values()),
            "req_rhs": list(m.req_rhs.values()),
            "bal_rhs": list(m.bal_rhs.values()),
            "cap": list(m.cap.values()),
            "floor": list(m.floor.values()),
            "price_imp": list(m.price_imp.values()),
            "carbon_imp": list(m.carbon_imp.values()),
            "price_exp": list(m.price_exp.values()),
        }
        pvars = list(m.P.values())
        self._mut_p = [pvars[i * n + t] for i in mut_ports for t in flat]
        self._y = list(m.Y.values())
        self._curt = list(m.curt.values())

    def _flat(self, data: Data, name: str) -> np.ndarray:
        if name == "p_ub":
            return data.p_ub[self._mut_ports].reshape(-1)
        return np.asarray(getattr(data, name), dtype=float).reshape(-1)

    def _changed(self, data: Data, name: str) -> tuple[list[int], list[float]]:
        new, prev = self._flat(data, name), self._flat(self.data, name)
        changed = np.nonzero(~((new == prev) | (np.isnan(new) & np.isnan(prev))))[0]
        return changed.tolist(), new[changed].tolist()

    def set_data(self, data: Data) -> None:
        """Write the numbers of a new plan into the model: Params and Var bounds (only
        those that differ from the previous plan's)."""
        m = self.model
        for name, params in self._series.items():
            for k, v in zip(*self._changed(data, name), strict=True):
                params[k].set_value(v)
        for k, v in zip(*self._changed(data, "p_ub"), strict=True):
            self._mut_p[k].setub(v)
        for k, v in zip(*self._changed(data, "y_lo"), strict=True):
            self._y[k].setlb(v)
        for k, v in zip(*self._changed(data, "y_hi"), strict=True):
            self._y[k].setub(v)
        for k, v in zip(*self._changed(data, "pv"), strict=True):
            self._curt[k].setub(v)
        if data.imp_lim != self.data.imp_lim:
            for x in m.imp.values():
                x.setub(data.imp_lim)
        for k, v in zip(*self._changed(data, "exp_lim"), strict=True):
            m.exp[k].setub(v)
        m.peak.setlb(data.peak_lb)
        m.demand_charge.set_value(data.demand_charge)
        self.data = data


def _init(values: np.ndarray, index: Any) -> dict[int, float]:
    vals = values.tolist()
    return {k: vals[k] for k in index} if not isinstance(index, range) else dict(enumerate(vals))
