"""The recovery after a DR event: the import ceiling rises from where the event left it so
that the site does not rebound at once, then, for the rest of the recovery window, a hold
that keeps the day's peak and the site's `rebound_cap_kw` (it proposes to the arbiter until
the window is over).

The ramp is a binding target (the closed loop steers to it); the hold is a limit, binding
only when the import comes near it, as the site's own import limit is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from vpp.control.arbiter import Proposal
from vpp.control.types import TargetSource


class Recovery:
    """After an event: the ceiling rises from `level_kw` by `ramp` kW per minute up to
    `hold(now)` (kW), and holds there until `start + window`. Without a hold, the ramp ends at
    `end_kw` (the site limit)."""

    def __init__(
        self,
        start: datetime,
        level_kw: float,
        ramp_kw_per_min: float,
        end_kw: float,
        *,
        hold: Callable[[datetime], float] | None = None,
        window: timedelta = timedelta(0),
    ):
        self.start = start
        self.level_kw = level_kw
        self.ramp = ramp_kw_per_min
        self.end_kw = end_kw
        self.hold = hold
        self.window = window

    def _ramp(self, now: datetime) -> float:
        minutes = (now - self.start).total_seconds() / 60
        return self.level_kw + self.ramp * max(0.0, minutes)

    def _hold(self, now: datetime) -> float:
        return self.end_kw if self.hold is None else min(self.end_kw, self.hold(now))

    def ceiling(self, now: datetime) -> float:
        """The import ceiling at `now` (kW)."""
        return min(self._ramp(now), self._hold(now))

    def ramping(self, now: datetime) -> bool:
        """Still on the ramp (below the hold)."""
        return self._ramp(now) < self._hold(now)

    def over(self, now: datetime) -> bool:
        """True once the ramp is done and the recovery window has passed."""
        return not self.ramping(now) and now >= self.start + self.window

    def proposal(self, now: datetime) -> Proposal:
        """This cycle's ceiling, for the arbiter: the ramp as a target, the hold as a limit."""
        source = TargetSource.RECOVERY if self.ramping(now) else TargetSource.SITE_LIMIT
        return Proposal(self.ceiling(now), source)
