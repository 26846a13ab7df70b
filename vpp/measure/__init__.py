"""DR performance measurement: baselines, per-event reports, comfort and rebound.

Pure functions over plain data (series read from the store by the caller); no I/O.
"""

from vpp.measure.baseline import (
    Adjustment,
    BaselineResult,
    XofYConfig,
    counterfactual_baseline,
    x_of_y_baseline,
)
from vpp.measure.comfort import ZoneComfortInput, ZoneComfortResult, zone_comfort
from vpp.measure.contribution import DeviceContribution, DeviceInput, device_contribution
from vpp.measure.rebound import Rebound, rebound_peak
from vpp.measure.report import (
    EventInterval,
    EventReport,
    EventSpec,
    IntervalReport,
    build_report,
)
from vpp.measure.series import Gap, IntervalAverage, StepSeries, grid

__all__ = [
    "Adjustment",
    "BaselineResult",
    "DeviceContribution",
    "DeviceInput",
    "EventInterval",
    "EventReport",
    "EventSpec",
    "Gap",
    "IntervalAverage",
    "IntervalReport",
    "Rebound",
    "StepSeries",
    "XofYConfig",
    "ZoneComfortInput",
    "ZoneComfortResult",
    "build_report",
    "counterfactual_baseline",
    "device_contribution",
    "grid",
    "rebound_peak",
    "x_of_y_baseline",
    "zone_comfort",
]
