"""The recovery ramp after a DR event: the import ceiling rises from where the event left it
so that the site does not rebound at once (it proposes to the arbiter until it is over)."""

from __future__ import annotations

from datetime import datetime

from vpp.control.arbiter import Proposal
from vpp.control.types import TargetSource


class Recovery:
    """After an event: the import ceiling rises from `level_kw` by `ramp` kW per minute."""

    def __init__(self, start: datetime, level_kw: float, ramp_kw_per_min: float, end_kw: float):
        self.start = start
        self.level_kw = level_kw
        self.ramp = ramp_kw_per_min
        self.end_kw = end_kw

    def ceiling(self, now: datetime) -> float:
        """The import ceiling at `now` (kW)."""
        minutes = (now - self.start).total_seconds() / 60
        return self.level_kw + self.ramp * max(0.0, minutes)

    def over(self, now: datetime) -> bool:
        """True once the ceiling reached `end_kw` (the rebound cap or the site limit)."""
        return self.ceiling(now) >= self.end_kw

    def proposal(self, now: datetime) -> Proposal:
        """This cycle's ceiling, for the arbiter."""
        return Proposal(self.ceiling(now), TargetSource.RECOVERY)
