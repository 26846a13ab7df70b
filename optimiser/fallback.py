"""The fallback heuristic: a feasible plan without a solver, used when the solve fails,
times out without a solution, or the model cannot be built.

Rules, in priority order (comfort, then EV needs, then the import limit):
1. Batteries idle (SoC stays where it is: always inside the hard band).
2. Zones: a thermostat on the same 1R1C equation: each step, just enough power to keep the
   zone inside its band, capped at the zone's maximum.
3. EVs at maximum power while plugged, scaled down together when site import would pass
   the import limit.
4. Curtailable loads run unshed.
5. The site exports what it must up to the export limit and curtails PV beyond it; import
   beyond the limit (base load alone too high) is reported as a slack.
The plan goes through the same assembly as an optimum, so every slack is named.
"""

from __future__ import annotations

import numpy as np

from optimiser.layout import Data, Layout
from optimiser.schedule import Schedule, assemble


def fallback_arrays(layout: Layout, data: Data) -> dict[str, np.ndarray]:
    """Solution arrays of the heuristic, shaped like the LP's (see optimiser.layout)."""
    n = layout.n
    P = np.zeros((len(layout.ports), n))
    ev_like = [
        i
        for i, p in enumerate(layout.ports)
        if p.ub_varies and p.site_sign > 0 and layout.blocks[layout.port_block[i]].storage is None
    ]  # plugged-window ports without a storage of their own (EVs): at their per-step maximum
    for i in ev_like:
        P[i] = data.p_ub[i]
    first: dict[int, int] = {}
    for i, b in enumerate(layout.port_block):
        first.setdefault(b, i)
    ns = len(layout.storage_block)
    Y = np.zeros((ns, n))
    H = np.zeros((layout.n_soft, n))
    L = np.zeros((layout.n_soft, n))
    for s, b in enumerate(layout.storage_block):
        st = layout.blocks[b].storage
        assert st is not None
        ports = [i for i, pb in enumerate(layout.port_block) if pb == b]
        soft = layout.soft_of_storage[s]
        x = st.x0
        for t in range(n):
            free = st.decay * x + st.drive[t]
            if soft >= 0:
                for i in ports:  # thermostat: steer toward the band
                    c = layout.ports[i].state_coef
                    if c != 0.0:
                        target = min(max(free, data.y_lo[s, t]), data.y_hi[s, t])
                        P[i, t] = min(max((target - free) / c, 0.0), data.p_ub[i, t])
                        free += c * P[i, t]
            x = free + sum(layout.ports[i].state_coef * P[i, t] for i in ports if soft < 0)
            if soft >= 0:
                lo, hi = data.y_lo[s, t], data.y_hi[s, t]
                Y[s, t] = min(max(x, lo), hi)
                H[soft, t] = max(0.0, x - hi)
                L[soft, t] = max(0.0, lo - x)
            else:
                Y[s, t] = x
    signs = np.array([p.site_sign for p in layout.ports])
    net = data.bal_rhs + (signs[:, None] * P).sum(axis=0) if len(signs) else data.bal_rhs.copy()
    # Scale EVs down where the import limit would be passed.
    ev_load = P[ev_like].sum(axis=0) if ev_like else np.zeros(n)
    excess = np.maximum(0.0, net - data.imp_lim)
    ratio = np.divide(excess, ev_load, out=np.zeros(n), where=ev_load > 1e-9)
    scale = np.where(ev_load > 1e-9, np.maximum(0.0, 1.0 - ratio), 1.0)
    for i in ev_like:
        P[i] *= scale
    net = net - ev_load * (1.0 - scale)
    imp = np.clip(net, 0.0, data.imp_lim)
    over = np.maximum(0.0, net - data.imp_lim)
    exp = np.clip(-net, 0.0, data.exp_lim)
    curt = np.minimum(np.maximum(0.0, -net - data.exp_lim), data.pv)
    short = np.maximum(0.0, imp + over - data.cap)
    under = np.maximum(0.0, data.floor - (imp + over - exp))
    R = np.zeros(layout.n_slack)
    for r, (b, req) in enumerate(layout.reqs):
        k = layout.soft_req[r]
        if k < 0:
            continue
        lhs = 0.0
        for local, coefs in req.coefs.items():
            lhs += float(np.dot(coefs, P[first[b] + local]))
        if req.final_coef:
            s = layout.block_storage[b]
            soft = layout.soft_of_storage[s]
            xf = Y[s, -1] + (H[soft, -1] - L[soft, -1] if soft >= 0 else 0.0)
            lhs += req.final_coef * xf
        R[k] = max(0.0, req.rhs - lhs)
    peak = np.array([max(data.peak_lb, float(np.max(imp + over)))])
    return {
        "P": P, "Y": Y, "H": H, "L": L, "R": R, "imp": imp, "over": over, "exp": exp,
        "curt": curt, "short": short, "under": under, "peak": peak,
    }  # fmt: skip


def fallback_schedule(layout: Layout, data: Data, reason: str) -> Schedule:
    """The heuristic plan, marked `fallback=True` with `reason`."""
    sched = assemble(layout, data, fallback_arrays(layout, data), status="fallback")
    sched.fallback = True
    sched.reason = reason
    return sched
