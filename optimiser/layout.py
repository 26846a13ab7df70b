"""The LP's shape (`Layout`, structural) and its per-plan numbers (`Data`, mutable).

Both the Pyomo model and the reference highspy build read these, so they state one LP:

columns  P[port,t] ∈ [0, ub]            port power, kW
         Y[s,t] ∈ [lo, hi]              storage state after step t (band part for soft ones)
         H[s,t], L[s,t] ≥ 0             above / below the band (soft storages only)
         R[r] ≥ 0                       requirement slack (soft requirements only)
         imp[t] ∈ [0, import limit], over[t] ≥ 0 (import beyond the limit), exp[t] ∈ [0,
         export limit], curt[t] ∈ [0, pv[t]] (PV curtailed), short[t] ≥ 0 (DR shortfall),
         under[t] ≥ 0 (import under an import target), peak ≥ peak so far
rows     dyn[s,t]:  X[s,t] − a·X[s,t−1] − Σ coef·P[port,t] = drive[t] (+ a·x0 at t = 0),
                    X = Y + H − L
         bal[t]:    imp + over − exp − curt − Σ sign·P = base − pv + offsets
         dr[t]:     imp + over − short ≤ cap[t]
         pk[t]:     peak − imp − over ≥ 0
         req[r]:    Σ coef·P + final_coef·X[s,T−1] + R ≥ rhs
         fl[t]:     imp + over − exp + under ≥ floor[t]  (an import target's floor; without
                    one −exp_lim[t] − 1, never binding)

An import target X is the step's bounds [X, X], both soft at the DR shortfall's penalty:
`cap` X (the ceiling, slack `short`) and `floor` X (slack `under`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimiser.blocks import Block, Port, Requirement
from optimiser.inputs import Problem

INF = float("inf")


@dataclass
class Layout:
    """Index structure of the LP for one set of blocks (changes only on a rebuild)."""

    n: int
    dt: float
    blocks: list[Block]
    ports: list[Port]
    port_block: list[int]
    storage_block: list[int]  # block index of each storage
    block_storage: dict[int, int]
    soft_of_storage: list[int]  # soft index per storage, −1 for a hard band
    reqs: list[tuple[int, Requirement]]  # (block index, requirement)
    soft_req: list[int]  # slack index per requirement, −1 for hard
    pen_over: float
    pen_dr: float
    signature: tuple[object, ...]
    hard_import: bool = False  # no import beyond the limit (column `over` fixed at 0)

    @property
    def n_soft(self) -> int:
        return sum(1 for s in self.soft_of_storage if s >= 0)

    @property
    def n_slack(self) -> int:
        return sum(1 for s in self.soft_req if s >= 0)


@dataclass
class Data:
    """Mutable numbers of one plan, as arrays shaped by the layout."""

    p_ub: np.ndarray  # (ports, n) kW
    y_lo: np.ndarray  # (storages, n)
    y_hi: np.ndarray
    dyn_rhs: np.ndarray  # (storages, n)
    req_rhs: np.ndarray  # (requirements,)
    bal_rhs: np.ndarray  # (n,) kW
    cap: np.ndarray  # (n,) kW, inf when no event
    floor: np.ndarray  # (n,) kW, the import floor (an import target), −exp_lim − 1 without
    pv: np.ndarray  # (n,) kW
    imp_lim: float
    exp_lim: np.ndarray  # (n,) kW, the site's export limit lowered by export-cap events
    peak_lb: float
    price_imp: np.ndarray  # (n,) currency/kWh, DR price events applied
    carbon_imp: np.ndarray  # (n,) currency/kWh of carbon cost on imports
    price_exp: np.ndarray  # (n,) currency/kWh
    demand_charge: float  # currency/kW


def make_layout(problem: Problem, blocks: list[Block]) -> Layout:
    """Index the blocks' ports, storages and requirements."""
    ports: list[Port] = []
    port_block: list[int] = []
    storage_block: list[int] = []
    block_storage: dict[int, int] = {}
    soft: list[int] = []
    reqs: list[tuple[int, Requirement]] = []
    soft_req: list[int] = []
    for b, blk in enumerate(blocks):
        for p in blk.ports:
            ports.append(p)
            port_block.append(b)
        if blk.storage is not None:
            block_storage[b] = len(storage_block)
            storage_block.append(b)
            soft.append(-1 if blk.storage.soft_penalty is None else sum(s >= 0 for s in soft))
        for r in blk.requirements:
            reqs.append((b, r))
            soft_req.append(-1 if r.penalty is None else sum(s >= 0 for s in soft_req))
    pen = problem.penalties
    signature = (
        problem.grid.steps,
        problem.grid.dt_h,
        pen.import_over_limit_per_kwh,
        pen.dr_shortfall_per_kwh,
        problem.site.import_limit_hard,
        tuple(b.signature() for b in blocks),
    )
    return Layout(
        problem.grid.steps, problem.grid.dt_h, blocks, ports, port_block, storage_block,
        block_storage, soft, reqs, soft_req, pen.import_over_limit_per_kwh,
        pen.dr_shortfall_per_kwh, signature, problem.site.import_limit_hard,
    )  # fmt: skip


def _event_arrays(
    problem: Problem, price: np.ndarray, carbon_kg: np.ndarray, exp_lim: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Apply DR events: returns the import cap and floor per step; overrides `price` and
    `carbon_kg` and lowers `exp_lim` in place."""
    grid, n = problem.grid, problem.grid.steps
    cap = np.full(n, INF)
    floor = np.full(n, -INF)
    base = None if problem.baseline_kw is None else np.asarray(problem.baseline_kw, float)
    for ev in problem.events:
        first = max(0, grid.step_of(ev.start))
        last = min(n, -((grid.start - ev.end) // grid.step))  # ceil: steps touched
        if first >= last:
            continue
        sl = slice(first, last)
        if ev.kind == "price":
            price[sl] = ev.value
        elif ev.kind == "carbon":
            carbon_kg[sl] = ev.value
        elif ev.kind == "export_cap_kw":
            exp_lim[sl] = np.minimum(exp_lim[sl], ev.value)
        elif ev.kind == "import_cap_kw":
            cap[sl] = np.minimum(cap[sl], ev.value)
        elif ev.kind == "import_target_kw":
            cap[sl] = np.minimum(cap[sl], ev.value)
            floor[sl] = np.maximum(floor[sl], ev.value)
        else:
            assert base is not None  # validated by Problem
            cap[sl] = np.minimum(cap[sl], base[sl] - ev.value)
    # A floor never above the step's ceiling (a stricter cap wins); none: never binding.
    floor = np.minimum(floor, cap)
    return cap, np.where(np.isfinite(floor), floor, -exp_lim - 1.0)


def make_data(problem: Problem, layout: Layout) -> Data:
    """Numbers of `problem` for the LP of `layout` (the blocks must come from `problem`)."""
    n, site = layout.n, problem.site
    blocks = layout.blocks
    p_ub = np.array([p.ub for p in layout.ports]).reshape(len(layout.ports), n)
    st = [blocks[b].storage for b in layout.storage_block]
    ns = len(st)
    y_lo = np.empty((ns, n))
    y_hi = np.empty((ns, n))
    dyn_rhs = np.empty((ns, n))
    for i, s in enumerate(st):
        assert s is not None
        y_lo[i], y_hi[i] = s.lo, s.hi
        dyn_rhs[i] = s.drive
        dyn_rhs[i, 0] += s.decay * s.x0
    req_rhs = np.array([r.rhs for _, r in layout.reqs], dtype=float)
    offsets = np.zeros(n)
    for blk in blocks:
        if blk.offset_kw is not None:
            offsets += blk.offset_kw
    pv = np.asarray(site.pv_kw, dtype=float)
    bal_rhs = np.asarray(site.base_load_kw, dtype=float) - pv + offsets
    price = np.asarray(site.import_price, dtype=float).copy()
    carbon_kg = (
        np.zeros(n)
        if site.carbon_kg_per_kwh is None
        else np.asarray(site.carbon_kg_per_kwh, dtype=float).copy()
    )
    exp_lim = np.full(n, float(site.export_limit_kw))
    cap, floor = _event_arrays(problem, price, carbon_kg, exp_lim)
    carbon = site.carbon_price * carbon_kg
    return Data(
        p_ub, y_lo, y_hi, dyn_rhs, req_rhs, bal_rhs, cap, floor, pv, site.import_limit_kw,
        exp_lim, site.peak_so_far_kw, price, carbon,
        np.asarray(site.export_price, dtype=float), site.demand_charge,
    )  # fmt: skip
