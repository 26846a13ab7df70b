"""Adapters: each asset becomes device-agnostic storage/flow building blocks (numpy arrays).

A block has non-negative power *ports* (kW, each adding `site_sign`·p to site consumption and
`state_coef`·p to its storage per step), an optional *storage* state with linear dynamics
`x[t+1] = decay·x[t] + Σ state_coef·p[t] + drive[t]` and a band `lo[t] ≤ x[t+1] ≤ hi[t]`
(hard, or soft with a penalty per unit·h), and optional *requirements*
`Σ_t Σ_ports coef·p[t] + final_coef·x[T] (+ slack) ≥ rhs`.
The model code sees only these; the device kinds live here.

Structural data (ratings, efficiencies, RC, COP) shape the model; per-step data (bounds,
drives, bands, rhs) are mutable and change on each re-plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from optimiser.inputs import (
    BatteryAsset,
    CurtailableLoadAsset,
    EvSession,
    Problem,
    ThermalZoneAsset,
)

FloatArray = np.ndarray


@dataclass
class Port:
    """A power flow of an asset, 0 ≤ p[t] ≤ ub[t] kW."""

    name: str
    site_sign: float
    state_coef: float
    cost_per_kwh: float
    ub: FloatArray
    rated_kw: float  # structural upper bound (≥ every ub[t]); used for binaries
    ub_varies: bool = False  # True: ub is re-set on every plan (else fixed by the structure)
    cost_kind: str = "degradation"  # where cost_per_kwh is reported in the cost breakdown
    # True: each kWh through the port is also charged the step's import price and carbon
    # (a shed that must not pay for itself from the tariff: see CurtailableLoadAsset.dr_only).
    price_neutral: bool = False


@dataclass
class Storage:
    """Linear storage state (kWh or degC); `x0` is the state at the start of the horizon."""

    unit: str
    decay: float
    x0: float
    drive: FloatArray
    lo: FloatArray
    hi: FloatArray
    soft_penalty: float | None = None  # currency per unit·h outside the band; None: hard
    terminal_value: float = 0.0  # currency per unit left at the end


@dataclass
class Requirement:
    """`Σ_t Σ_port coefs[port][t]·p[t] + final_coef·x[T] + slack ≥ rhs` (slack penalised)."""

    name: str
    coefs: dict[int, FloatArray]
    final_coef: float
    rhs: float
    penalty: float | None  # currency per unit of slack; None: hard (must be feasible)


@dataclass
class Block:
    """The building blocks of one asset. `complementary` pairs ports that may not both be
    non-zero in one step (charge/discharge)."""

    asset_id: str
    ports: list[Port]
    storage: Storage | None = None
    requirements: list[Requirement] = field(default_factory=list)
    offset_kw: FloatArray | None = None  # fixed consumption added to the site
    complementary: tuple[int, int] | None = None

    def signature(self) -> tuple[object, ...]:
        """Structural identity: a change here needs a rebuild."""
        st = self.storage
        return (
            self.asset_id,
            tuple(
                (
                    p.name,
                    p.site_sign,
                    p.state_coef,
                    p.cost_per_kwh,
                    p.rated_kw,
                    p.ub_varies,
                    p.price_neutral,
                )
                for p in self.ports
            ),
            None
            if st is None
            else (st.unit, st.decay, st.soft_penalty is None, st.soft_penalty, st.terminal_value),
            tuple((r.name, tuple(r.coefs), r.final_coef, r.penalty) for r in self.requirements),
            self.offset_kw is not None,
            self.complementary,
        )


def _battery(a: BatteryAsset, n: int, dt: float, pen_final: float, keep: np.ndarray) -> Block:
    charge_ub, discharge_ub = np.full(n, a.charge_max_kw), np.full(n, a.discharge_max_kw)
    if a.available_steps is not None:
        charge_ub[min(a.available_steps, n) :] = 0.0  # a vehicle's: gone once it leaves
        discharge_ub[min(a.available_steps, n) :] = 0.0
    # Kept for the known events: no discharge before (or between) them, so that no
    # arbitrage spends what an event will need (charging for them stays free).
    discharge_ub[keep] = 0.0
    ports = [
        Port("charge", 1.0, dt * a.charge_efficiency, a.throughput_cost,
             charge_ub, a.charge_max_kw, ub_varies=True),
        Port("discharge", -1.0, -dt / a.discharge_efficiency, a.throughput_cost,
             discharge_ub, a.discharge_max_kw, ub_varies=True),
    ]  # fmt: skip
    lo_set = a.soc_min_kwh
    hi_set = a.capacity_kwh if a.soc_max_kwh is None else a.soc_max_kwh
    # A start outside the band widens the band to include it: idling must stay feasible
    # (the site may be unable to absorb a forced discharge or to supply a forced charge).
    lo = np.full(n, min(lo_set, a.soc_kwh))
    hi = np.full(n, max(hi_set, a.soc_kwh))
    if a.available_steps is not None and a.departure_soc_kwh is not None:
        # The SoC it must leave with, from its departure on (or, past the horizon, what it
        # must hold at the horizon's end to still reach it charging at full power after).
        dep = a.available_steps
        per_step = dt * a.charge_max_kw * a.charge_efficiency
        k = min(dep, n) - 1
        need = a.departure_soc_kwh - max(0, dep - n) * per_step
        reachable = a.soc_kwh + (k + 1) * per_step
        floor = min(need, reachable, hi[k])
        if k >= 0 and floor > lo[k]:
            lo[k:] = np.maximum(lo[k:], floor)
    storage = Storage(
        unit="kWh", decay=1.0, x0=a.soc_kwh, drive=np.zeros(n), lo=lo, hi=hi,
        terminal_value=a.terminal_value,
    )  # fmt: skip
    reqs = []
    if a.final_soc_kwh is not None:
        penalty = None if a.final_soc_hard else pen_final
        reqs.append(Requirement("final_soc_kwh", {}, 1.0, a.final_soc_kwh, penalty))
    return Block(a.id, ports, storage, reqs, complementary=(0, 1))


def _ev(a: EvSession, n: int, dt: float, pen: float) -> Block:
    ub = np.zeros(n)
    ub[min(a.arrival_step, n) : min(a.departure_step, n)] = a.max_kw
    # What cannot be delivered after the horizon must be delivered within it.
    after = max(0, a.departure_step - max(n, a.arrival_step))
    need = max(0.0, a.energy_kwh - after * dt * a.max_kw * a.efficiency)
    port = Port("power", 1.0, 0.0, 0.0, ub, a.max_kw, ub_varies=True)
    req = Requirement("unmet_kwh", {0: np.full(n, dt * a.efficiency)}, 0.0, need, pen)
    return Block(a.id, [port], None, [req])


def _zone(a: ThermalZoneAsset, out: FloatArray, n: int, dt: float, pen: float) -> Block:
    decay = math.exp(-dt / (a.r_k_per_kw * a.c_kwh_per_k))
    sign = -1.0 if a.mode == "cooling" else 1.0
    gains = np.asarray(a.internal_gain_kw, dtype=float)
    if a.solar_gain_kw is not None:
        gains = gains + np.asarray(a.solar_gain_kw, dtype=float)
    coef = (1.0 - decay) * a.r_k_per_kw * a.cop * sign
    port = Port("power", 1.0, coef, 0.0, np.full(n, a.max_kw), a.max_kw)
    storage = Storage(
        unit="degC", decay=decay, x0=a.temp_c, drive=(1.0 - decay) * (out + a.r_k_per_kw * gains),
        lo=np.asarray(a.comfort_min_c, dtype=float), hi=np.asarray(a.comfort_max_c, dtype=float),
        soft_penalty=pen,
    )  # fmt: skip
    return Block(a.id, [port], storage)


def _curtailable(a: CurtailableLoadAsset, n: int, dt: float) -> Block:
    load = np.asarray(a.load_kw, dtype=float)
    shed_ub = np.minimum(load, a.max_shed_kw)
    shed_ub[: min(n, math.ceil(a.rest_left_h / dt - 1e-9))] = 0.0  # still resting
    port = Port(
        "shed", -1.0, 0.0, a.cost, shed_ub, a.max_shed_kw, True, "curtailment",
        price_neutral=a.dr_only,
    )  # fmt: skip
    # Shed at most max_duration_h in every window of max_duration_h + min_rest_h: runs of
    # at most max_duration_h, rests of at least min_rest_h, give no more in any window.
    width = max(1, math.ceil((a.max_duration_h + a.min_rest_h) / dt - 1e-9))
    budget_kwh = a.max_shed_kw * a.max_duration_h
    reqs = []
    for k in range(max(1, n - width + 1)):
        coefs = np.zeros(n)
        coefs[k : k + width] = -dt
        # The first window already holds the shed under way.
        used = a.max_shed_kw * a.shed_h if k == 0 else 0.0
        reqs.append(
            Requirement(f"shed_window_{k}", {0: coefs}, 0.0, -max(0.0, budget_kwh - used), None)
        )
    return Block(a.id, [port], None, reqs, offset_kw=load)


def keep_for_events(problem: Problem) -> np.ndarray:
    """Steps (mask) before or between the known curtailment and cap events: a battery
    keeps its energy for them there."""
    grid, n = problem.grid, problem.grid.steps
    in_event = np.zeros(n, dtype=bool)
    last = -1
    for ev in problem.events:
        if ev.kind == "price":
            continue
        first = max(0, grid.step_of(ev.start))
        end = min(n, -((grid.start - ev.end) // grid.step))
        if first < end:
            in_event[first:end] = True
            last = max(last, end)
    keep = np.zeros(n, dtype=bool)
    if last > 0:
        keep[:last] = ~in_event[:last]
    return keep


def to_blocks(problem: Problem) -> list[Block]:
    """Turn every asset of `problem` into its building block (same order as the assets)."""
    n, dt, pen = problem.grid.steps, problem.grid.dt_h, problem.penalties
    out = np.asarray(problem.site.outdoor_temp_c, dtype=float)
    keep = keep_for_events(problem)
    blocks: list[Block] = []
    for a in problem.assets:
        if isinstance(a, BatteryAsset):
            blocks.append(_battery(a, n, dt, pen.battery_final_per_kwh, keep))
        elif isinstance(a, EvSession):
            blocks.append(_ev(a, n, dt, pen.ev_unmet_per_kwh))
        elif isinstance(a, ThermalZoneAsset):
            blocks.append(_zone(a, out, n, dt, pen.comfort_per_degc_h))
        else:
            blocks.append(_curtailable(a, n, dt))
    return blocks
