"""The plan returned to the dispatcher, and its assembly from solution arrays.

Sign: consumption positive (battery charging +, discharging −, curtailable load = its load
minus the shed). Costs in currency over the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from optimiser.layout import Data, Layout

SLACK_TOL = 1e-6


@dataclass
class CostBreakdown:
    """Objective terms in currency: energy = import cost − export revenue (DR prices
    applied); carbon = carbon price on imports; demand = demand charge on the peak;
    degradation = battery throughput cost; curtailment = cost of shed load; penalties =
    every soft-constraint penalty; terminal_credit = value of energy left (subtracted)."""

    energy: float = 0.0
    carbon: float = 0.0
    demand: float = 0.0
    degradation: float = 0.0
    curtailment: float = 0.0
    penalties: float = 0.0
    terminal_credit: float = 0.0

    @property
    def total(self) -> float:
        """The objective value: the sum of the terms minus the terminal credit."""
        return (
            self.energy + self.carbon + self.demand + self.degradation + self.curtailment
            + self.penalties - self.terminal_credit
        )  # fmt: skip


@dataclass
class Timings:
    """Seconds spent: `build` (adapters + Pyomo model, 0 on a re-plan), `update` (Params),
    `solve` (hand-over + HiGHS), `extract` (reading the answer into this schedule)."""

    build_s: float = 0.0
    update_s: float = 0.0
    solve_s: float = 0.0
    extract_s: float = 0.0
    solver_run_s: float = 0.0
    rebuilt: bool = False


@dataclass
class Schedule:
    """A plan over the grid. Per asset id: `power_kw` (kW per step, consumption +); `soc_kwh`
    (batteries: state after each step; EVs: energy delivered by the end of each step);
    `temperature_c` (zones: after each step). `site_import_kw` is the predicted net site
    import per step (negative = export). `dr_shortfall_kw` per step is how far import
    exceeds the DR cap. `slacks` names every non-zero soft-constraint slack (kWh, degC·h
    or kW·h). `fallback` is True when the plan is the heuristic, not an optimum."""

    status: str
    fallback: bool
    power_kw: dict[str, list[float]]
    soc_kwh: dict[str, list[float]]
    temperature_c: dict[str, list[float]]
    site_import_kw: list[float]
    pv_curtailed_kw: list[float]
    dr_shortfall_kw: list[float]
    cost: CostBreakdown
    slacks: dict[str, float]
    objective: float
    timings: Timings = field(default_factory=Timings)
    reason: str = ""
    charge_kw: dict[str, list[float]] = field(default_factory=dict)
    """Per storage asset with a charge/discharge pair (batteries, V2G): the charging flow
    (kW, ≥ 0) per step; `power_kw` is charge − discharge."""
    discharge_kw: dict[str, list[float]] = field(default_factory=dict)
    """The discharging flow (kW, ≥ 0) per step of the same assets."""


def assemble(layout: Layout, data: Data, a: dict[str, np.ndarray], status: str) -> Schedule:
    """Turn solution arrays (see optimiser.layout for the names) into a Schedule."""
    n, dt = layout.n, layout.dt
    P = a["P"]
    power: dict[str, np.ndarray] = {}
    for i, b in enumerate(layout.port_block):
        blk = layout.blocks[b]
        base = power.get(blk.asset_id)
        if base is None:
            base = np.zeros(n) if blk.offset_kw is None else blk.offset_kw.astype(float).copy()
        power[blk.asset_id] = base + layout.ports[i].site_sign * P[i]
    charge: dict[str, list[float]] = {}
    discharge: dict[str, list[float]] = {}
    first: dict[int, int] = {}
    for i, b in enumerate(layout.port_block):
        first.setdefault(b, i)
    for b, blk in enumerate(layout.blocks):
        if blk.complementary is not None:
            charge[blk.asset_id] = P[first[b] + blk.complementary[0]].tolist()
            discharge[blk.asset_id] = P[first[b] + blk.complementary[1]].tolist()
    soc: dict[str, list[float]] = {}
    temp: dict[str, list[float]] = {}
    slacks: dict[str, float] = {}
    cost = CostBreakdown()
    for s, b in enumerate(layout.storage_block):
        blk = layout.blocks[b]
        st = blk.storage
        assert st is not None
        x = a["Y"][s].copy()
        soft = layout.soft_of_storage[s]
        if soft >= 0:
            h, lo = a["H"][soft], a["L"][soft]
            x += h - lo
            viol = float(np.sum(h + lo) * dt)
            cost.penalties += (st.soft_penalty or 0.0) * viol
            if viol > SLACK_TOL:
                slacks[f"{blk.asset_id}.comfort_degc_h"] = viol
        (temp if st.unit == "degC" else soc)[blk.asset_id] = x.tolist()
        cost.terminal_credit += st.terminal_value * float(x[-1])
    for r, (b, req) in enumerate(layout.reqs):
        blk = layout.blocks[b]
        if not req.coefs and req.final_coef == 0.0:
            continue
        k = layout.soft_req[r]
        if k >= 0:
            v = float(a["R"][k])
            cost.penalties += (req.penalty or 0.0) * v
            if v > SLACK_TOL:
                slacks[f"{blk.asset_id}.{req.name}"] = v
        if req.name == "unmet_kwh":  # EVs: report delivered energy as their state
            soc[blk.asset_id] = np.cumsum(req.coefs[0] * P[layout.port_block.index(b)]).tolist()
    for i, p in enumerate(layout.ports):
        c = p.cost_per_kwh * float(np.sum(P[i])) * dt
        if p.price_neutral:  # the tariff a dr-only shed may not earn: part of its cost
            c += float(np.sum((data.price_imp + data.carbon_imp) * P[i])) * dt
        if p.cost_kind == "curtailment":
            cost.curtailment += c
        else:
            cost.degradation += c
    imp = a["imp"] + a["over"]
    cost.energy = float(np.sum(data.price_imp * imp - data.price_exp * a["exp"]) * dt)
    cost.carbon = float(np.sum(data.carbon_imp * imp) * dt)
    cost.demand = data.demand_charge * float(a["peak"][0])
    over_kwh = float(np.sum(a["over"]) * dt)
    short_kwh = float(np.sum(a["short"]) * dt) + float(np.sum(a["under"]) * dt)
    cost.penalties += layout.pen_over * over_kwh + layout.pen_dr * short_kwh
    if over_kwh > SLACK_TOL:
        slacks["site.import_over_limit_kwh"] = over_kwh
    if short_kwh > SLACK_TOL:
        slacks["site.dr_shortfall_kwh"] = short_kwh
    return Schedule(
        status=status,
        fallback=False,
        power_kw={k: v.tolist() for k, v in power.items()},
        soc_kwh=soc,
        temperature_c=temp,
        site_import_kw=(imp - a["exp"]).tolist(),
        pv_curtailed_kw=a["curt"].tolist(),
        dr_shortfall_kw=a["short"].tolist(),
        cost=cost,
        slacks=slacks,
        objective=cost.total,
        charge_kw=charge,
        discharge_kw=discharge,
    )
