"""Validity check of solution arrays against the LP they answer (optimiser.layout's rows and
bounds), recomputed from the arrays, not read back from the solver: a plan that fails it is
never dispatched (the planner answers with the fallback instead).

Checked: every column within its bounds (port powers, storage bands, import and export
limits, PV curtailment, non-negative slacks), the storage dynamics re-integrated step by
step, the site balance, and the requirements with their slacks. Hard limits are hard: a soft
slack (import beyond the limit, comfort, final SoC, EV energy) is allowed only where the
model has one.
"""

from __future__ import annotations

import numpy as np

from optimiser.layout import Data, Layout

ABS_TOL = 1e-4  # kW or kWh: far above HiGHS's 1e-7 feasibility tolerance, far below a device's
REL_TOL = 1e-6


def _tol(scale: np.ndarray | float) -> np.ndarray | float:
    return ABS_TOL + REL_TOL * np.abs(scale)


def violations(layout: Layout, data: Data, a: dict[str, np.ndarray]) -> list[str]:
    """What is wrong with arrays `a` as an answer to (`layout`, `data`): one line per kind
    of violation (the worst step named), empty when the plan is valid."""
    out: list[str] = []
    n = layout.n

    def bound(name: str, x: np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float) -> None:
        x = np.asarray(x, dtype=float)
        if x.size == 0:
            return
        if not np.all(np.isfinite(x)):
            out.append(f"{name}: not a number")
            return
        below = np.broadcast_to(np.asarray(lo, dtype=float), x.shape) - x
        above = x - np.broadcast_to(np.asarray(hi, dtype=float), x.shape)
        worst = np.maximum(below, above)
        bad = worst > _tol(x)
        if np.any(bad):
            k = int(np.argmax(np.where(bad, worst, -np.inf)))
            idx = np.unravel_index(k, x.shape)
            out.append(f"{name}{list(map(int, idx))}: {float(worst[idx]):.4g} outside its bounds")

    P = a["P"]
    for i, p in enumerate(layout.ports):
        blk = layout.blocks[layout.port_block[i]]
        bound(f"{blk.asset_id}.{p.name}", P[i], 0.0, data.p_ub[i])
    bound("storage", a["Y"], data.y_lo, data.y_hi)
    bound("site.import_kw", a["imp"], 0.0, data.imp_lim)
    bound("site.export_kw", a["exp"], 0.0, data.exp_lim)
    bound("site.pv_curtailed_kw", a["curt"], 0.0, data.pv)
    bound("site.import_over_limit_kw", a["over"], 0.0, 0.0 if layout.hard_import else np.inf)
    for name in ("short", "under", "R", "H", "L"):
        bound(f"slack {name}", a[name], 0.0, np.inf)

    # Storage dynamics: X[t] = decay·X[t−1] + Σ coef·P[t] + drive[t] (X = Y + H − L).
    for s, b in enumerate(layout.storage_block):
        st = layout.blocks[b].storage
        assert st is not None
        soft = layout.soft_of_storage[s]
        x = a["Y"][s] + (a["H"][soft] - a["L"][soft] if soft >= 0 else 0.0)
        gain = np.zeros(n)
        for i, pb in enumerate(layout.port_block):
            if pb == b:
                gain += layout.ports[i].state_coef * P[i]
        prev = np.concatenate([[0.0], x[:-1]])  # dyn_rhs[0] already holds decay·x0
        resid = x - st.decay * prev - gain - data.dyn_rhs[s]
        worst = int(np.argmax(np.abs(resid)))
        if abs(resid[worst]) > _tol(x[worst]):
            name = layout.blocks[b].asset_id
            out.append(f"{name}: state off its dynamics by {resid[worst]:.4g} at step {worst}")

    # Site balance: imp + over − exp − curt − Σ sign·P = base − pv + offsets.
    signs = np.array([p.site_sign for p in layout.ports], dtype=float)
    net = (signs[:, None] * P).sum(axis=0) if len(signs) else np.zeros(n)
    resid = a["imp"] + a["over"] - a["exp"] - a["curt"] - net - data.bal_rhs
    worst = int(np.argmax(np.abs(resid)))
    if abs(resid[worst]) > _tol(data.bal_rhs[worst]):
        out.append(f"site balance: off by {resid[worst]:.4g} kW at step {worst}")

    # Requirements: Σ coef·P + final·X[T−1] (+ slack) ≥ rhs.
    first: dict[int, int] = {}
    for i, b in enumerate(layout.port_block):
        first.setdefault(b, i)
    for r, (b, req) in enumerate(layout.reqs):
        lhs = sum(float(np.dot(c, P[first[b] + local])) for local, c in req.coefs.items())
        if req.final_coef:
            s = layout.block_storage[b]
            soft = layout.soft_of_storage[s]
            xf = a["Y"][s, -1] + (a["H"][soft, -1] - a["L"][soft, -1] if soft >= 0 else 0.0)
            lhs += req.final_coef * float(xf)
        k = layout.soft_req[r]
        if k >= 0:
            lhs += float(a["R"][k])
        if lhs < req.rhs - float(_tol(req.rhs)):
            out.append(f"{layout.blocks[b].asset_id}.{req.name}: {req.rhs - lhs:.4g} short")
    return out
