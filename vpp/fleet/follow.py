"""Real-time follow-up of a district event: which sites no longer carry their part.

A site fails when it answered `opt_out` or `rejected`, when its agent is offline (retained
status or last will), or when it is short: over the last control period its delivery
(its settlement baseline for each sample's interval − its import then, from telemetry)
stayed below `shortfall_ratio` of what it was asked. The baseline is the site's own: the
one its telemetry states for the running interval (the grid extension's `baseline_kw`), or
its report's for an interval it reported; a site that states none is measured against the
baseline of the last interval it reported, and not judged before its first report (its
import before the event is no baseline: a battery discharging then). A site is judged only
a whole control period after its part last changed (a modification may raise the running
interval's value: the samples before it were not asked that).

A site that went away is still followed: what it draws (its meter's feed while its agent is
down, its telemetry once the agent is back) against its last known baseline. When it draws
more than that baseline (its agent's battery plan lost with it), the excess is its deficit,
which the others are asked on top of the district's request.

Pure: the run, the book and the time in; per failing site the reason and what the next
allocation may count on: nothing (limit 0) from a site that opted out or went away; from one
that falls behind, each kW asked at the share it delivers (its measured record), so that
others are asked the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from vpp.fleet.book import FleetBook, SiteInfo
from vpp.fleet.config import AllocationOptions
from vpp.fleet.run import EventRun, Leg

_EPS = timedelta(microseconds=1)
MIN_DEFICIT_STEP_KW = 1.0
"""A dead site's deficit is re-allocated when it moved by at least this (and by the share of
the request the shortfall rule tolerates)."""


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
        gone = leg.status in ("opt_out", "rejected") or book.sites[site_id].online is False
        # One that fell behind still counts at its record: it fails again when it goes away.
        if not any(leg.values) or (leg.failed is not None and (leg.limit_kw == 0.0 or not gone)):
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


def baseline_at(leg: Leg, info: SiteInfo, run: EventRun, t: datetime) -> float | None:
    """The site's settlement baseline for the interval of a sample at `t` (kW): the one its
    telemetry stated with that sample, its report's for that interval, else the newest it
    made known (stated or reported); None before it made any known."""
    k = run.interval_at(t - _EPS)
    stated = next((kw for ts, kw in reversed(info.stated) if ts == t), None)
    if stated is not None:
        return stated
    if k is not None and k in leg.baselines:
        return leg.baselines[k]
    last = next(((ts, kw) for ts, kw in reversed(info.stated) if ts <= t), None)
    if leg.reported_baseline and leg.reference_kw is not None:
        if last is None or (leg.reported_at is not None and leg.reported_at >= last[0]):
            return leg.reference_kw
    return last[1] if last is not None else None


def _period(run: EventRun, leg: Leg, now: datetime, options: AllocationOptions) -> datetime | None:
    """The start of the control period ending `now`, when the site may be judged over it: a
    whole period since its part last changed, inside the event."""
    since = now - timedelta(seconds=options.control_period_s)
    if leg.changed_at is not None and leg.changed_at > since:
        return None  # asked otherwise within the period: not yet a control period to follow
    if run.interval_at(since) is None or run.interval_at(now) is None:
        return None  # the control period is not wholly inside the event
    return since


def _short(
    run: EventRun, leg: Leg, book: FleetBook, now: datetime, options: AllocationOptions
) -> float | None:
    """Delivered ÷ asked (0–1) when the site stayed short over the last control period."""
    if leg.status != "opt_in" or (since := _period(run, leg, now, options)) is None:
        return None
    info = book.sites[leg.site_id]
    samples = [(t, kw) for t, kw in info.samples if since < t <= now]
    if len(samples) < 2:
        return None
    # A sample is the mean of the period up to its time: it belongs to the interval before.
    asked, delivered = [], []
    for t, kw in samples:
        k, base = run.interval_at(t - _EPS), baseline_at(leg, info, run, t)
        if k is None or base is None:
            return None  # a sample we cannot measure: no judgement on part of the period
        asked.append(leg.asked(k))
        delivered.append(base - kw)
    if min(asked) <= 0:
        return None
    if all(d < options.shortfall_ratio * a for d, a in zip(delivered, asked, strict=True)):
        return min(1.0, max(0.0, round(sum(delivered) / sum(asked), 3)))
    return None


def deficits(
    run: EventRun, book: FleetBook, now: datetime, options: AllocationOptions
) -> dict[str, float]:
    """Per site that went away (or opted out after it acted) whose deficit (kW drawn above
    its baseline over the last control period) moved enough to re-allocate: the new one."""
    out: dict[str, float] = {}
    k_now = run.interval_at(now)
    for site_id, leg in run.legs.items():
        if leg.limit_kw != 0.0 or leg.status in ("opt_out", "rejected"):
            continue  # not a site that went away while acting
        if k_now is None or (since := _period(run, leg, now, options)) is None:
            continue
        if leg.deficit_at is not None and leg.deficit_at > since:
            continue  # changed within the period: its samples before are not the new picture
        info = book.sites[site_id]
        samples = info.imports_in(since, now)
        bases = [baseline_at(leg, info, run, t) for t, _ in samples]
        if not samples or any(b is None for b in bases):
            continue
        drawn = sum(b - kw for b, (_, kw) in zip(bases, samples, strict=True) if b is not None)
        deficit = round(max(0.0, -drawn / len(samples)), 3)
        step = max(MIN_DEFICIT_STEP_KW, (1 - options.shortfall_ratio) * run.requested_kw[k_now])
        if abs(deficit - leg.deficit_kw) >= step:
            out[site_id] = deficit
    return out
