"""One place decides the control cycle's target: controllers propose import ceilings, the
arbiter picks the one that governs and never lets it exceed the site's limit.

Priority: a DR event's target, then the recovery ramp after an event, then the site limit
(what governs when nothing else is proposed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from vpp.control.types import Target, TargetSource

PRIORITY = {TargetSource.EVENT: 2, TargetSource.RECOVERY: 1, TargetSource.SITE_LIMIT: 0}
"""Higher governs; among equals, the first proposed."""


@dataclass(frozen=True)
class Proposal:
    """A controller's wish for this cycle: keep the site import at or under `import_max_kw`
    (kW) for `source` (with the event's id and end for an event)."""

    import_max_kw: float
    source: TargetSource
    event_id: str | None = None
    until: datetime | None = None


class Arbiter:
    """Turns the cycle's proposals into its one target, capped at `site_limit_kw`."""

    def __init__(self, site_limit_kw: float) -> None:
        self.site_limit_kw = site_limit_kw

    def decide(self, proposals: Sequence[Proposal]) -> Target:
        """The proposal of highest priority, at most the site limit; the site limit if none."""
        best = max(proposals, key=lambda p: PRIORITY[p.source], default=None)
        if best is None:
            return Target(self.site_limit_kw, TargetSource.SITE_LIMIT)
        return Target(
            min(best.import_max_kw, self.site_limit_kw), best.source, best.event_id, best.until
        )
