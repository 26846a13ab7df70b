"""The aggregator's state of one district event: what each site carries of it (its leg) and
how far the event has gone. Plain pydantic data, stored as JSON (vpp.fleet.store) so that a
restarted aggregator resumes where it was."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class Leg(BaseModel):
    """The part of a district event one site carries."""

    model_config = ConfigDict(extra="forbid")

    site_id: str
    values: list[float]
    """kW asked of the site per interval of the event."""
    modification: int = -1
    """Of the site event last sent (-1: none sent yet)."""
    status: str | None = None
    """The site's latest answer (received, opt_in, opt_out, completed, rejected)."""
    failed: str | None = None
    """Why its part was re-allocated (opted out, offline, short); None while it counts."""
    limit_kw: float | None = None
    """At most this is asked of it from the next re-allocation on (kW)."""
    record: float | None = None
    """Delivered ÷ asked as measured in this event, once it fell behind: what the next
    re-allocation counts on of each kW asked of it."""
    reference_kw: float | None = None
    """What its telemetry is measured against (kW): its import before the event, then the
    baseline of the last interval it reported."""
    changed_at: datetime | None = None
    """When its values last changed (a modification sent): it is judged short only a whole
    control period after (its closed loop needs that to follow)."""
    reported_baseline: bool = False
    """`reference_kw` is a baseline from its own report (an import before the event is no
    baseline to judge it on: its battery may have been discharging then)."""
    baselines: dict[int, float] = {}
    """Its reports' baseline per interval reported (kW)."""
    reported_at: datetime | None = None
    """When its latest report came."""
    deficit_kw: float = 0.0
    """Once it went away: the kW it draws above its baseline (its telemetry, or its meter's
    feed while its agent is down: a dead site's negative delivery), which the others are
    asked on top of the district's request."""
    deficit_at: datetime | None = None
    """When `deficit_kw` last changed (it is measured again a control period later)."""

    def asked(self, k: int) -> float:
        """kW asked in interval `k`."""
        return self.values[k] if k < len(self.values) else 0.0


class EventRun(BaseModel):
    """A district event the aggregator carries out."""

    model_config = ConfigDict(extra="forbid")

    event_id: str
    modification: int
    """The district event's modification this run is for."""
    signal: str
    starts: list[datetime]
    ends: list[datetime]
    requested_kw: list[float]
    """The district's reduction per interval (a cap converted: vpp.fleet.request)."""
    legs: dict[str, Leg]
    revision: int = 0
    """Allocations made (the first is 0; +1 per re-allocation)."""
    reported: int = 0
    """Intervals reported upward."""
    done: bool = False
    test: bool = False

    def interval_at(self, now: datetime) -> int | None:
        """Index of the interval running at `now`, if any."""
        pairs = enumerate(zip(self.starts, self.ends, strict=True))
        return next((k for k, (s, e) in pairs if s <= now < e), None)

    def next_interval(self, now: datetime) -> int | None:
        """Index of the first interval starting after `now`, if any."""
        return next((k for k, s in enumerate(self.starts) if s > now), None)
