"""The same LP as optimiser.pyomo_model, built straight with highspy's array API.

It is the speed limit the Pyomo path is measured against (bench/optimiser.py) and the
second formulation the tests compare objectives with. Not used for planning.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np

from optimiser.layout import Data, Layout

INF = highspy.kHighsInf


@dataclass
class _Cols:
    P: int
    Y: int
    H: int
    L: int
    R: int
    imp: int
    over: int
    exp: int
    curt: int
    short: int
    under: int
    peak: int
    total: int


def _columns(lay: Layout) -> _Cols:
    n = lay.n
    sizes = [
        ("P", len(lay.ports) * n), ("Y", len(lay.storage_block) * n), ("H", lay.n_soft * n),
        ("L", lay.n_soft * n), ("R", lay.n_slack), ("imp", n), ("over", n), ("exp", n),
        ("curt", n), ("short", n), ("under", n), ("peak", 1),
    ]  # fmt: skip
    off, starts = 0, {}
    for name, size in sizes:
        starts[name] = off
        off += size
    return _Cols(**starts, total=off)


class RawHighsLp:
    """The LP of `layout` in one highspy model; `update` applies a new Data in place."""

    def __init__(
        self, layout: Layout, data: Data, options: dict[str, bool | int | float | str] | None = None
    ):
        self.lay = layout
        self.c = _columns(layout)
        self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        for k, v in (options or {}).items():
            self.h.setOptionValue(k, v)
        self._build(data)

    # ---- column-wise data that changes with each plan
    def _col_bounds(self, d: Data) -> tuple[np.ndarray, np.ndarray]:
        lay, c, n = self.lay, self.c, self.lay.n
        lo = np.zeros(c.total)
        hi = np.full(c.total, INF)
        hi[c.P : c.P + len(lay.ports) * n] = d.p_ub.ravel()
        ns = len(lay.storage_block) * n
        lo[c.Y : c.Y + ns] = d.y_lo.ravel()
        hi[c.Y : c.Y + ns] = d.y_hi.ravel()
        hi[c.imp : c.imp + n] = d.imp_lim
        hi[c.exp : c.exp + n] = d.exp_lim
        if lay.hard_import:
            hi[c.over : c.over + n] = 0.0
        hi[c.curt : c.curt + n] = d.pv
        lo[c.peak] = d.peak_lb
        return lo, hi

    def _costs(self, d: Data) -> np.ndarray:
        lay, c, n, dt = self.lay, self.c, self.lay.n, self.lay.dt
        cost = np.zeros(c.total)
        ci = (d.price_imp + d.carbon_imp) * dt
        cost[c.imp : c.imp + n] = ci
        cost[c.over : c.over + n] = ci + lay.pen_over * dt
        cost[c.exp : c.exp + n] = -d.price_exp * dt
        cost[c.short : c.short + n] = lay.pen_dr * dt
        cost[c.under : c.under + n] = lay.pen_dr * dt
        cost[c.peak] = d.demand_charge
        for i, p in enumerate(lay.ports):
            cost[c.P + i * n : c.P + (i + 1) * n] = p.cost_per_kwh * dt + (
                ci if p.price_neutral else 0.0
            )
        for s, b in enumerate(lay.storage_block):
            st = lay.blocks[b].storage
            assert st is not None
            k = lay.soft_of_storage[s]
            if k >= 0 and st.soft_penalty:
                cost[c.H + k * n : c.H + (k + 1) * n] = st.soft_penalty * dt
                cost[c.L + k * n : c.L + (k + 1) * n] = st.soft_penalty * dt
            if st.terminal_value:
                cost[c.Y + s * n + n - 1] -= st.terminal_value
                if k >= 0:
                    cost[c.H + k * n + n - 1] -= st.terminal_value
                    cost[c.L + k * n + n - 1] += st.terminal_value
        for r, (_b, req) in enumerate(lay.reqs):
            k = lay.soft_req[r]
            if k >= 0 and req.penalty:
                cost[c.R + k] = req.penalty
        return cost

    def _row_bounds(self, d: Data) -> tuple[np.ndarray, np.ndarray]:
        n = self.lay.n
        dyn = d.dyn_rhs.ravel()
        lo = np.concatenate([dyn, d.bal_rhs, np.full(n, -INF), np.zeros(n), d.req_rhs, d.floor])
        hi = np.concatenate(
            [dyn, d.bal_rhs, d.cap, np.full(n, INF), np.full(len(d.req_rhs), INF), np.full(n, INF)]
        )
        return lo, hi

    def _matrix(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        lay, c, n = self.lay, self.c, self.lay.n
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []

        def add(r: np.ndarray, k: np.ndarray, v: np.ndarray | float) -> None:
            rows.append(r)
            cols.append(k)
            vals.append(np.broadcast_to(np.asarray(v, dtype=float), r.shape))

        t = np.arange(n)
        block_ports: dict[int, list[int]] = {}
        for i, b in enumerate(lay.port_block):
            block_ports.setdefault(b, []).append(i)
        # dyn rows: X[s,t] − a·X[s,t−1] − Σ coef·P = rhs, X = Y + H − L
        for s, b in enumerate(lay.storage_block):
            st = lay.blocks[b].storage
            assert st is not None
            r = s * n + t
            k = lay.soft_of_storage[s]
            xs = [(c.Y + s * n, 1.0)]
            if k >= 0:
                xs += [(c.H + k * n, 1.0), (c.L + k * n, -1.0)]
            for base, sign in xs:
                add(r, base + t, sign)
                add(r[1:], base + t[:-1], -st.decay * sign)
            for i in block_ports.get(b, []):
                coef = lay.ports[i].state_coef
                if coef != 0.0:
                    add(r, c.P + i * n + t, -coef)
        r0 = len(lay.storage_block) * n
        # bal rows
        rb = r0 + t
        add(rb, c.imp + t, 1.0)
        add(rb, c.over + t, 1.0)
        add(rb, c.exp + t, -1.0)
        add(rb, c.curt + t, -1.0)
        for i, p in enumerate(lay.ports):
            add(rb, c.P + i * n + t, -p.site_sign)
        # dr rows
        rd = r0 + n + t
        add(rd, c.imp + t, 1.0)
        add(rd, c.over + t, 1.0)
        add(rd, c.short + t, -1.0)
        # peak rows
        rp = r0 + 2 * n + t
        add(rp, np.full(n, c.peak), 1.0)
        add(rp, c.imp + t, -1.0)
        add(rp, c.over + t, -1.0)
        # requirement rows
        for q, (b, req) in enumerate(lay.reqs):
            rr = r0 + 3 * n + q
            ports_b = block_ports.get(b, [])
            for local, arr in req.coefs.items():
                nz = np.nonzero(arr)[0]
                add(np.full(len(nz), rr), c.P + ports_b[local] * n + nz, arr[nz])
            if req.final_coef != 0.0:
                s = lay.block_storage[b]
                k = lay.soft_of_storage[s]
                one = np.array([rr])
                add(one, np.array([c.Y + s * n + n - 1]), req.final_coef)
                if k >= 0:
                    add(one, np.array([c.H + k * n + n - 1]), req.final_coef)
                    add(one, np.array([c.L + k * n + n - 1]), -req.final_coef)
            if lay.soft_req[q] >= 0:
                add(np.array([rr]), np.array([c.R + lay.soft_req[q]]), 1.0)
        # floor rows (after the requirements)
        rf = r0 + 3 * n + len(lay.reqs) + t
        add(rf, c.imp + t, 1.0)
        add(rf, c.over + t, 1.0)
        add(rf, c.exp + t, -1.0)
        add(rf, c.under + t, 1.0)
        n_rows = r0 + 4 * n + len(lay.reqs)
        R = np.concatenate(rows)
        K = np.concatenate(cols)
        V = np.concatenate(vals)
        order = np.argsort(K, kind="stable")
        starts = np.zeros(c.total + 1, dtype=np.int32)
        np.cumsum(np.bincount(K, minlength=c.total), out=starts[1:])
        return starts, R[order].astype(np.int32), V[order], n_rows

    def _build(self, d: Data) -> None:
        lp = highspy.HighsLp()
        lp.num_col_ = self.c.total
        starts, index, value, n_rows = self._matrix()
        lp.num_row_ = n_rows
        lp.col_cost_ = self._costs(d)
        lp.col_lower_, lp.col_upper_ = self._col_bounds(d)
        lp.row_lower_, lp.row_upper_ = self._row_bounds(d)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = starts
        lp.a_matrix_.index_ = index
        lp.a_matrix_.value_ = value
        self.h.passModel(lp)

    def solve(self) -> float:
        """Run HiGHS; returns the objective (currency)."""
        self.h.run()
        if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(
                f"reference LP: {self.h.modelStatusToString(self.h.getModelStatus())}"
            )
        return float(self.h.getInfo().objective_function_value)

    def update(self, d: Data) -> None:
        """Apply new per-plan numbers (bounds, rhs, costs); keeps the basis for a warm start."""
        lo, hi = self._col_bounds(d)
        idx = np.arange(self.c.total, dtype=np.int32)
        self.h.changeColsBounds(len(idx), idx, lo, hi)
        self.h.changeColsCost(len(idx), idx, self._costs(d))
        rlo, rhi = self._row_bounds(d)
        ridx = np.arange(len(rlo), dtype=np.int32)
        self.h.changeRowsBounds(len(ridx), ridx, rlo, rhi)  # type: ignore[attr-defined]

    def column_values(self) -> np.ndarray:
        """Primal values of every column (layout order, see _columns)."""
        return np.asarray(self.h.getSolution().col_value)
