"""One place decides the control cycle's target: controllers propose import ceilings, the
arbiter picks the one that governs and never lets it exceed the site's limit.

Priority: a DR event's target, then the recovery ramp after an event, then the site limit
(what governs when nothing else is proposed). Export ceilings (an export-cap event) do not
compete with import ceilings: the lowest one proposed holds whatever governs the import.
An import target is a ceiling with a floor (`import_min_kw`): the floor goes with the ceiling
that governs, never above it (the site limit wins).
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
    (kW; None: no wish about import) for `source` (with the event's id and end for an
    event), and the site's export at or under `export_max_kw` (kW ≥ 0; None: no wish); an
    import target also asks the import at or above `import_min_kw` (kW; None: no floor)."""

    import_max_kw: float | None
    source: TargetSource
    event_id: str | None = None
    until: datetime | None = None
    export_max_kw: float | None = None
    import_min_kw: float | None = None


class Arbiter:
    """Turns the cycle's proposals into its one target, capped at `site_limit_kw`."""

    def __init__(self, site_limit_kw: float) -> None:
        self.site_limit_kw = site_limit_kw

    def decide(self, proposals: Sequence[Proposal]) -> Target:
        """The import ceiling of highest priority, at most the site limit (the site limit if
        none), with the lowest export ceiling proposed and the governing proposal's floor."""
        export = min(
            (p.export_max_kw for p in proposals if p.export_max_kw is not None), default=None
        )
        ceilings = [p for p in proposals if p.import_max_kw is not None]
        best = max(ceilings, key=lambda p: PRIORITY[p.source], default=None)
        if best is None or best.import_max_kw is None:
            return Target(self.site_limit_kw, TargetSource.SITE_LIMIT, export_max_kw=export)
        ceiling = min(best.import_max_kw, self.site_limit_kw)
        floor = None if best.import_min_kw is None else min(best.import_min_kw, ceiling)
        return Target(
            ceiling,
            best.source,
            best.event_id,
            best.until,
            export_max_kw=export,
            import_min_kw=floor,
        )
