"""Plain-data inputs of the optimiser: the time grid, the site, the assets and DR events.

Units: power kW, energy kWh, prices currency/kWh, temperatures degC, times in steps of the
grid unless a name says otherwise. Sign: consumption positive (+kW drawn from the grid).
Every model forbids unknown fields, so a typo fails with the field's name.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_STEPS = 192

NonNeg = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Fraction = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]


class _Plain(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeGrid(_Plain):
    """The planning grid: `steps` intervals of `step` starting at `start` (timezone-aware)."""

    start: datetime
    step: timedelta = timedelta(minutes=15)
    steps: int = Field(default=96, ge=1, le=MAX_STEPS)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.step <= timedelta(0):
            raise ValueError("step: must be positive")
        return self

    @property
    def dt_h(self) -> float:
        """Step length in hours."""
        return self.step.total_seconds() / 3600.0

    def step_of(self, when: datetime) -> int:
        """Index of the step containing `when` (may be < 0 or >= steps)."""
        return int((when - self.start) // self.step)


class SiteForecast(_Plain):
    """Per-step site data; every series has one value per step of the grid.

    `base_load_kw` is the uncontrolled consumption (assets excluded), `pv_kw` the PV
    generation as a positive number (it may be curtailed), prices in currency/kWh (may be
    negative), `carbon_kg_per_kwh` the grid's intensity (optional, with `carbon_price` in
    currency/kg applied to imports). `demand_charge` is currency per kW of the horizon's peak
    import; `peak_so_far_kw` is the billing period's peak already set.
    """

    base_load_kw: list[NonNeg]
    pv_kw: list[NonNeg]
    outdoor_temp_c: list[Finite]
    import_price: list[Finite]
    export_price: list[Finite]
    import_limit_kw: NonNeg
    export_limit_kw: NonNeg
    import_limit_hard: bool = False
    """True: import beyond `import_limit_kw` is infeasible, not a penalised slack (a plan
    that cannot keep it is then the fallback's, which reports the excess)."""
    demand_charge: NonNeg = 0.0
    peak_so_far_kw: NonNeg = 0.0
    carbon_kg_per_kwh: list[NonNeg] | None = None
    carbon_price: NonNeg = 0.0


class BatteryAsset(_Plain):
    """A battery: stationary, or a vehicle's while it is plugged in. SoC in kWh; power limits
    in kW on the AC side.

    `final_soc_kwh` is a soft minimum at the horizon end (penalised per kWh missing);
    `terminal_value` credits each kWh left at the end (currency/kWh). `throughput_cost` is a
    degradation cost per kWh charged plus per kWh discharged.

    A vehicle's battery (a bidirectional charger) is connected for the first
    `available_steps` steps only (no power after; may lie beyond the horizon) and must hold
    at least `departure_soc_kwh` when it leaves (hard; lowered to what charging at full
    power from `soc_kwh` can reach).
    """

    kind: Literal["battery"] = "battery"
    id: str = Field(min_length=1)
    capacity_kwh: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    charge_max_kw: NonNeg
    discharge_max_kw: NonNeg
    charge_efficiency: Fraction = 0.95
    discharge_efficiency: Fraction = 0.95
    soc_min_kwh: NonNeg = 0.0
    soc_max_kwh: NonNeg | None = None
    soc_kwh: NonNeg
    final_soc_kwh: NonNeg | None = None
    final_soc_hard: bool = False
    """True: `final_soc_kwh` must be met (no penalised slack: a plan that cannot meet it is
    the fallback's); False (default): a soft minimum."""
    terminal_value: NonNeg = 0.0
    throughput_cost: NonNeg = 0.001
    available_steps: int | None = Field(default=None, ge=0)
    departure_soc_kwh: NonNeg | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        hi = self.capacity_kwh if self.soc_max_kwh is None else self.soc_max_kwh
        if hi > self.capacity_kwh:
            raise ValueError(f"battery {self.id}: soc_max_kwh exceeds capacity_kwh")
        if self.soc_min_kwh > hi:
            raise ValueError(f"battery {self.id}: soc_min_kwh above soc_max_kwh")
        if self.soc_kwh > self.capacity_kwh:
            raise ValueError(f"battery {self.id}: soc_kwh above capacity_kwh")
        if self.final_soc_kwh is not None and self.final_soc_kwh > self.capacity_kwh:
            raise ValueError(f"battery {self.id}: final_soc_kwh above capacity_kwh")
        return self


class EvSession(_Plain):
    """An EV plugged from step `arrival_step` to `departure_step` (exclusive; may lie beyond
    the horizon), needing `energy_kwh` delivered into the battery by departure."""

    kind: Literal["ev"] = "ev"
    id: str = Field(min_length=1)
    arrival_step: int = Field(ge=0)
    departure_step: int = Field(ge=0)
    energy_kwh: NonNeg
    max_kw: NonNeg
    efficiency: Fraction = 0.92

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.departure_step < self.arrival_step:
            raise ValueError(f"ev {self.id}: departure_step before arrival_step")
        return self


class ThermalZoneAsset(_Plain):
    """A 1R1C zone served by a heat pump / chiller (domain.md §6).

    `T[k+1] = a·T[k] + (1−a)·(T_out + R·(Q_int + Q_sol ± COP·P_el))`, `a = exp(−Δt/RC)`,
    minus for `mode="cooling"`, plus for `"heating"`. R in K/kW, C in kWh/K, gains in kW
    (thermal) per step, `max_kw` electric. Comfort band per step in degC.
    """

    kind: Literal["zone"] = "zone"
    id: str = Field(min_length=1)
    r_k_per_kw: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    c_kwh_per_k: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    cop: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    max_kw: NonNeg
    mode: Literal["cooling", "heating"] = "cooling"
    temp_c: Finite
    comfort_min_c: list[Finite]
    comfort_max_c: list[Finite]
    internal_gain_kw: list[Finite]
    solar_gain_kw: list[Finite] | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        for k, (lo, hi) in enumerate(zip(self.comfort_min_c, self.comfort_max_c, strict=False)):
            if lo > hi:
                raise ValueError(f"zone {self.id}: comfort_min_c[{k}] above comfort_max_c[{k}]")
        return self


class CurtailableLoadAsset(_Plain):
    """A load drawing `load_kw` per step (not part of the site base load) that may shed up
    to `max_shed_kw` at `cost` per kWh shed (the value of the service lost).

    It stays shed at most `max_duration_h` at a time and runs at least `min_rest_h` between
    two sheds; the LP keeps the exact form of that rule (every window of max_duration_h +
    min_rest_h holds at most max_duration_h of full shed). `shed_h` is how long it has been
    shed already (the first window's budget is that much smaller), `rest_left_h` how long
    it must still run before it may be shed again.

    `dr_only` (a load shed only for DR events and site limits): shedding earns nothing from
    the tariff (each kWh shed is charged its import price and carbon), so the plan sheds it
    only to meet an event, the import limit or the peak, never for the price.
    """

    kind: Literal["curtailable"] = "curtailable"
    id: str = Field(min_length=1)
    load_kw: list[NonNeg]
    max_shed_kw: NonNeg
    max_duration_h: NonNeg
    cost: NonNeg
    min_rest_h: NonNeg = 0.0
    dr_only: bool = False
    shed_h: NonNeg = 0.0
    rest_left_h: NonNeg = 0.0


Asset = Annotated[
    BatteryAsset | EvSession | ThermalZoneAsset | CurtailableLoadAsset,
    Field(discriminator="kind"),
]


class DrEvent(_Plain):
    """A DR event interval [start, end). `curtail_kw`: site import at most baseline − value;
    `import_cap_kw`: site import at most value; `import_target_kw`: site import value, soft
    both ways (penalised as a DR shortfall either side); `price`: the import price for the interval
    (currency/kWh); `export_cap_kw`: site export at most value (kW, under the site's own
    export limit); `carbon`: the grid's carbon intensity for the interval (kg CO2/kWh,
    costed at `SiteForecast.carbon_price`). Each step overlapping the interval is affected."""

    kind: Literal[
        "curtail_kw", "import_cap_kw", "price", "export_cap_kw", "carbon", "import_target_kw"
    ]
    start: datetime
    end: datetime
    value: Finite
    event_id: str = ""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end: must be after start")
        if self.kind in ("export_cap_kw", "carbon") and self.value < 0:
            raise ValueError(f"value: a {self.kind} event's value must be ≥ 0")
        return self


class Penalties(_Plain):
    """Soft-constraint penalties, far above energy prices and ordered by priority:
    comfort and EV needs before DR delivery, DR before price. Currency per unit."""

    comfort_per_degc_h: NonNeg = 5000.0
    ev_unmet_per_kwh: NonNeg = 2000.0
    import_over_limit_per_kwh: NonNeg = 10000.0
    dr_shortfall_per_kwh: NonNeg = 500.0
    battery_final_per_kwh: NonNeg = 50.0


class SolverOptions(_Plain):
    """HiGHS settings. `time_limit_s` per solve; `highs` passes extra options verbatim."""

    time_limit_s: Annotated[float, Field(gt=0.0)] = 30.0
    mip_rel_gap: NonNeg = 1e-4
    highs: dict[str, bool | int | float | str] = Field(default_factory=dict)


class Problem(_Plain):
    """One planning request: grid, site, assets, DR events and the DR baseline (kW/step)."""

    grid: TimeGrid
    site: SiteForecast
    assets: list[Asset] = Field(default_factory=list)
    events: list[DrEvent] = Field(default_factory=list)
    baseline_kw: list[NonNeg] | None = None
    penalties: Penalties = Field(default_factory=Penalties)
    solver: SolverOptions = Field(default_factory=SolverOptions)

    @model_validator(mode="after")
    def _check(self) -> Self:
        n = self.grid.steps
        series: dict[str, list[float] | None] = {
            "site.base_load_kw": self.site.base_load_kw,
            "site.pv_kw": self.site.pv_kw,
            "site.outdoor_temp_c": self.site.outdoor_temp_c,
            "site.import_price": self.site.import_price,
            "site.export_price": self.site.export_price,
            "site.carbon_kg_per_kwh": self.site.carbon_kg_per_kwh,
            "baseline_kw": self.baseline_kw,
        }
        for i, a in enumerate(self.assets):
            if isinstance(a, ThermalZoneAsset):
                series[f"assets[{i}].comfort_min_c"] = a.comfort_min_c
                series[f"assets[{i}].comfort_max_c"] = a.comfort_max_c
                series[f"assets[{i}].internal_gain_kw"] = a.internal_gain_kw
                series[f"assets[{i}].solar_gain_kw"] = a.solar_gain_kw
            elif isinstance(a, CurtailableLoadAsset):
                series[f"assets[{i}].load_kw"] = a.load_kw
        for name, values in series.items():
            if values is not None and len(values) != n:
                raise ValueError(f"{name}: has {len(values)} values, the grid has {n} steps")
        seen: set[str] = set()
        for i, a in enumerate(self.assets):
            if a.id in seen:
                raise ValueError(f"assets[{i}].id: duplicate id {a.id!r}")
            seen.add(a.id)
        if any(e.kind == "curtail_kw" for e in self.events) and self.baseline_kw is None:
            raise ValueError("baseline_kw: required when an event has kind curtail_kw")
        return self
