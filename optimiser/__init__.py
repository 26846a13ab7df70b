"""Load-shifting optimiser: plain data in, plain data out (Pyomo + HiGHS).

Build a `Problem` (grid, site forecast, assets, DR events), keep one `Planner` and call
`planner.plan(problem)` each period: it returns a `Schedule` (always; `fallback=True` when
the heuristic had to answer). Units kW / kWh / degC / currency per kWh; consumption positive.
"""

from optimiser.inputs import (
    Asset,
    BatteryAsset,
    CurtailableLoadAsset,
    DrEvent,
    EvSession,
    Penalties,
    Problem,
    SiteForecast,
    SolverOptions,
    ThermalZoneAsset,
    TimeGrid,
)
from optimiser.planner import Planner
from optimiser.schedule import CostBreakdown, Schedule, Timings

__all__ = [
    "Asset",
    "BatteryAsset",
    "CostBreakdown",
    "CurtailableLoadAsset",
    "DrEvent",
    "EvSession",
    "Penalties",
    "Planner",
    "Problem",
    "Schedule",
    "SiteForecast",
    "SolverOptions",
    "ThermalZoneAsset",
    "TimeGrid",
    "Timings",
]
