"""Real-time follow-up of a district event: which sites no longer carry their part.

A site fails when it answered `opt_out` or `rejected`, when its agent is offline (retained
status or last will), or when it is short: over the last control period its delivery (the
baseline of the last interval it reported − its import now, from telemetry) stayed below
`shortfall_ratio` of what it was asked. A site is judged short only once it has reported an
interval (its import before the event is no baseline: a battery discharging then), and only
a whole control period after its part last changed (a modification may raise the running
interval's value: the samples before it were not asked that).

Pure: the run, the book and the time in; per failing site the reason and what the next
allocation may count on: nothing (limit 0) from a site that opted out or went away; from one
that falls behind, each kW asked at the share it delivers (its measured record), so that
others are asked the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from vpp.fleet.book import FleetBook
from vpp.fleet.config import AllocationOptions
from vpp.fleet.run import EventRun, Leg

_EPS = timedelta(microseconds=1)


@dataclass(frozen=True)
class Failure:
    """A site whose part is to be re-allocated."""

    site_id: str
    why: str
    limit_kw: float | None
    """The most it may be asked from the next interval on (0: nothing); None: unchanged."""
    record: float | None = None
    """Delivered ÷ asked, measured: what each kW asked of it counts from now on."""


def failures(
    run: EventRun, book: FleetBook, now: datetime, options: AllocationOptions
) -> list[Failure]:
    """The legs of `run` that newly fail at `now`."""
    out = []
    for site_id, leg in run.legs.items():
        if leg.failed is not None or not any(leg.values):
            continue
        if leg.status in ("opt_out", "rejected"):
            out.append(Failure(site_id, f"answered {leg.status}", 0.0))
        elif book.sites[site_id].online is False:
            out.append(Failure(site_id, "went offline", 0.0))
        elif (ratio := _short(run, leg, book, now, options)) is not None:
            out.append(
                Failure(site_id, f"falls behind ({ratio:.0%} of what it is asked)", None, ratio)
            )
    return out


def _short(
    run: EventRun, leg: Leg, book: FleetBook, now: datetime, options: AllocationOptions
) -> float | None:
    """Delivered ÷ asked (0–1) when the site stayed short over the last control period."""
    if leg.status != "opt_in" or leg.reference_kw is None or not leg.reported_baseline:
        return None
    since = now - timedelta(seconds=options.control_period_s)
    if leg.changed_at is not None and leg.changed_at > since:
        return None  # asked otherwise within the period: not yet a control period to follow
    k_since, k_now = run.interval_at(since), run.interval_at(now)
    if k_since is None or k_now is None:
        return None  # the control period is not wholly inside the event
    samples = [(t, kw) for t, kw in book.sites[leg.site_id].samples if since < t <= now]
    if len(samples) < 2:
        return None
    # A sample is the mean of the period up to its time: it belongs to the interval before.
    asked = [leg.asked(k) for t, _ in samples if (k := run.interval_at(t - _EPS)) is not None]
    if not asked or min(asked) <= 0:
        return None
    delivered = [leg.reference_kw - kw for _, kw in samples]
    if all(d < options.shortfall_ratio * a for d, a in zip(delivered, asked, strict=False)):
        return min(1.0, max(0.0, round(sum(delivered) / sum(asked), 3)))
    return None
