"""A district event as the reduction it asks per interval, and the candidates an allocation
may use.

A `curtail_kw` event asks its values. An `import_cap_kw` event asks, per interval, the
district's import above the cap: max(0, Σ member sites' latest import − cap); the sites
then get ordinary curtail_kw events (a cap split into per-site caps would need each site's
baseline the aggregator does not have ahead of time; a reduction is what offers state).
"""

from __future__ import annotations

from datetime import datetime

from vpp.fleet.allocate import Candidate, RequestInterval
from vpp.fleet.book import FleetBook
from vpp.fleet.config import FleetConfig
from vpp.fleet.run import EventRun
from vpp.grid.messages import Event

SIGNALS = ("curtail_kw", "import_cap_kw")
"""The district signals the aggregator allocates; others are answered opt_out."""


def district_import_kw(book: FleetBook) -> float:
    """Σ of the member sites' latest import (kW; sites without telemetry count 0)."""
    return sum(s.import_kw or 0.0 for s in book.sites.values())


def requested_kw(event: Event, book: FleetBook) -> list[float]:
    """The reduction the event asks of the district, per interval (kW)."""
    if event.signal == "curtail_kw":
        return [iv.value for iv in event.intervals]
    total = district_import_kw(book)
    return [round(max(0.0, total - iv.value), 3) for iv in event.intervals]


def request_intervals(run: EventRun) -> list[RequestInterval]:
    """The run's intervals as the allocation's request: the district's reduction, plus what
    sites that went away draw above their baselines (their deficits: the district's delivery
    is short of that too)."""
    owed = sum(leg.deficit_kw for leg in run.legs.values())
    return [
        RequestInterval(s, e - s, round(kw + owed, 3) if kw > 0 else kw)
        for s, e, kw in zip(run.starts, run.ends, run.requested_kw, strict=True)
    ]


def candidates(
    fleet: FleetConfig,
    book: FleetBook,
    run: EventRun | None,
    rests: dict[str, datetime],
    now: datetime,
    keep: bool = False,
) -> list[Candidate]:
    """Every member site with a live offer, with its cap, record, rest and (for a run under
    way) whether it is in the event already and what it may still be asked; `keep` (a
    re-allocation): what the sites whose part holds are asked is kept as their floor."""
    out = []
    for m in fleet.sites:
        info = book.sites[m.site_id]
        if info.offer is None or info.offer.valid_until <= now or info.online is False:
            continue
        leg = run.legs.get(m.site_id) if run is not None else None
        record = m.confidence if m.confidence is not None else fleet.allocation.default_confidence
        if leg is not None and leg.record is not None:
            record = min(record, leg.record)
        out.append(
            Candidate(
                offer=info.offer,
                record=record,
                max_kw=m.max_kw,
                last_event_end=rests.get(m.site_id),
                in_event=leg is not None and leg.modification >= 0,
                limit_kw=leg.limit_kw if leg is not None else None,
                # A part that holds is kept (one falling behind counts at its record).
                asked_kw=tuple(leg.values)
                if keep and leg is not None and leg.modification >= 0 and leg.limit_kw != 0.0
                else (),
            )
        )
    return out
