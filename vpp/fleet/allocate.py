"""Split a district request across the sites' offers: one LP solved by HiGHS (highspy).

Pure: offers and a request in, an allocation out (per site, per interval kW). Per site and
interval the LP chooses `x` (kW asked of the site) to

    minimise   Σ cost_per_kwh · x · hours  +  PENALTY · Σ uncovered
    subject to Σ_sites weight · x + uncovered_t ≥ requested_t         (each interval t)
               0 ≤ x ≤ min(window's curtail_kw, the site's cap, limit)  (0 outside notice)

`weight` is how much of an asked kW the district counts on: 1 − margin · (1 − p90 share ×
record), with p90 share = curtail_kw_p90 ÷ curtail_kw of the site's offer window and record
its delivery record (0–1). Margin 1 over-allocates each site by its 90 % gap and its record;
0 counts every asked kW.

Spread (`max_share`): the kW the district counts on from one site beyond `max_share` of an
interval's request cost CONCENTRATION_PER_KWH more (a second column per site and interval):
least cost alone puts the whole request on the cheapest site large enough, and a district
that one agent's loss leaves without its request is not reliable. A soft cap: when the
other sites cannot take the rest, the site is asked beyond it rather than the request left
uncovered. A site is left out (with the reason in `excluded`) when its offer is
stale, no window of it covers the span, the event starts within its notice, or its last
event ended less than its `min_rest` before. A site already in the event (`in_event`) may
be asked from the running interval on: a modification needs no notice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import highspy
import numpy as np

from vpp.grid.offers import Offer, OfferWindow

PENALTY_PER_KWH = 1e6
"""Cost of one kWh of the request left uncovered: far above any site's cost."""
CONCENTRATION_PER_KWH = 1e3
"""Extra cost of one kWh counted from a site beyond its share of the request: above any
site's cost, below leaving the request uncovered."""
QUARTER = timedelta(minutes=15)
_EPS = 1e-6
NOTICE_GRACE = timedelta(minutes=1)
"""An event sent exactly a site's notice ahead reaches the aggregator a few seconds later:
its first interval still counts as within the notice for this long."""


@dataclass(frozen=True)
class RequestInterval:
    """One interval of the district request: reduce by `kw` below the district baseline."""

    start: datetime
    duration: timedelta
    kw: float

    @property
    def end(self) -> datetime:
        """When the interval ends."""
        return self.start + self.duration


@dataclass(frozen=True)
class Candidate:
    """A site that may be asked: its latest offer and what the aggregator knows of it."""

    offer: Offer
    record: float = 1.0
    """Delivered ÷ asked in the site's past events (0–1)."""
    max_kw: float | None = None
    """The fleet file's cap for the site (kW)."""
    last_event_end: datetime | None = None
    """When the site's previous district event ended (for its min_rest)."""
    in_event: bool = False
    """Already taking part in this event: a modification, so its notice does not apply."""
    limit_kw: float | None = None
    """At most this from now on (kW): what a site that falls behind delivers; 0 for a site
    that opted out or went offline."""
    asked_kw: tuple[float, ...] = ()
    """Per interval of the request, what it is asked now (a site acting whose part holds):
    a re-allocation asks it at least that. Its newest offer is made with its commitments
    in its plan, so a window over the event may show little or nothing: without the floor
    a re-allocation took away the parts of sites that were delivering them."""

    @property
    def site_id(self) -> str:
        """The site's id."""
        return self.offer.site_id


@dataclass(frozen=True)
class Request:
    """A district request at `now`; intervals before `first` are past (not allocated)."""

    intervals: Sequence[RequestInterval]
    now: datetime
    first: int = 0


@dataclass(frozen=True)
class Allocation:
    """Per site, per interval of the request, the kW asked (0 before `first`)."""

    sites: dict[str, tuple[float, ...]]
    expected_kw: tuple[float, ...]
    """Per interval, the reduction the district counts on (Σ weight · x, ≤ requested)."""
    requested_kw: tuple[float, ...]
    excluded: dict[str, str] = field(default_factory=dict)
    """Sites left out, and why."""
    reason: str | None = None
    """Why the request cannot be covered (None when it is, in every interval)."""
    solve_s: float = 0.0

    def total_kw(self, i: int) -> float:
        """Σ kW asked of the sites in interval `i`."""
        return sum(v[i] for v in self.sites.values())

    def covered_share(self) -> float:
        """Expected ÷ requested energy over the allocated intervals (1 when nothing asked)."""
        req = sum(self.requested_kw)
        return 1.0 if req <= _EPS else min(1.0, sum(self.expected_kw) / req)


def window_for(
    offer: Offer, start: datetime, end: datetime, *, in_event: bool = False
) -> OfferWindow | None:
    """The offer's window for acting from `start` to `end`: one lasting at least `end −
    start` that starts within a quarter hour of `start` (windows start on quarter hours: an
    event at 14:05 is served by 14:00's or, just after the notice, 14:15's); one starting
    by `start` first, then the shortest, then the largest. Else a window that holds the
    whole span (a flat reduction held from its start holds over any part of it: windows
    start every hour by default, an event from 15:45 to 16:15 is inside 15:30's hour). A
    site already acting (`in_event`; its newer offer starts after its notice) may use its
    earliest window of that length."""
    long_enough = [w for w in offer.windows if w.duration >= end - start]
    fits = [w for w in long_enough if abs(w.start - start) < QUARTER]
    if not fits:
        fits = [w for w in long_enough if w.start <= start and w.start + w.duration >= end]
    if not fits and in_event and long_enough:
        first = min(w.start for w in long_enough)
        fits = [w for w in long_enough if w.start == first]
    if not fits:
        return None
    return min(fits, key=lambda w: (w.start > start, w.duration, -w.curtail_kw))


@dataclass(frozen=True)
class _Column:
    site: int
    interval: int
    upper: float
    cost: float
    weight: float
    lower: float = 0.0


def _kept(c: Candidate, request: Request, weight: float, cost_per_kwh: float) -> list[_Column]:
    """The site's current part as fixed columns (a site acting whose offer has nothing more
    for the span): it keeps what it is asked."""
    out = []
    for t in range(request.first, len(request.intervals)):
        kw = c.asked_kw[t] if t < len(c.asked_kw) else 0.0
        if kw > _EPS:
            hours = request.intervals[t].duration.total_seconds() / 3600.0
            out.append(_Column(-1, t, kw, cost_per_kwh * hours + _EPS, weight, kw))
    return out


def _weight(c: Candidate, window: OfferWindow | None, margin: float) -> float:
    kw = window.curtail_kw if window is not None else 0.0
    p90_share = window.curtail_kw_p90 / kw if window is not None and kw > _EPS else 1.0
    return max(0.0, 1.0 - margin * (1.0 - p90_share * c.record))


def _eligible(c: Candidate, request: Request, margin: float) -> tuple[list[_Column], str | None]:
    """The columns (interval, upper kW, cost per kW, weight, lower kW; site unset) of each
    interval the site may take, or why none."""
    offer, now = c.offer, request.now
    if offer.valid_until <= now:
        return [], f"its offer expired at {offer.valid_until.isoformat()}"
    ivs = list(request.intervals)[request.first :]
    if not ivs:
        return [], "nothing left to allocate"
    # A site already acting may take the running interval's remainder (a modification of
    # its current value); a new one only intervals that start after its notice.
    earliest = now + offer.notice - NOTICE_GRACE
    first = next(
        (
            k
            for k, iv in enumerate(ivs)
            if (iv.end > now if c.in_event else iv.start >= earliest - _EPS_T)
        ),
        None,
    )
    if first is None:
        return [], f"the event starts within its notice ({offer.notice})"
    if not c.in_event and c.last_event_end is not None:
        if ivs[first].start < c.last_event_end + offer.min_rest:
            return [], (
                f"its last event ended at {c.last_event_end.isoformat()}, within its rest "
                f"time ({offer.min_rest})"
            )
    window = window_for(offer, ivs[first].start, ivs[-1].end, in_event=c.in_event)
    weight = _weight(c, window, margin)
    if window is None or window.curtail_kw <= _EPS:
        kept = _kept(c, request, weight, 0.0)
        return kept, None if kept else "its offer has no kW for that span"
    upper = window.curtail_kw
    for cap in (c.max_kw, c.limit_kw):
        if cap is not None:
            upper = min(upper, cap)
    if upper <= _EPS:
        return [], "it may be asked nothing more"
    if weight <= _EPS:
        kept = _kept(c, request, 0.0, window.cost_per_kwh)
        return kept, None if kept else "its offer holds nothing for sure (no 90 % kW or no record)"
    out = []
    for k, iv in enumerate(ivs[first:], start=first):
        t = request.first + k
        hours = iv.duration.total_seconds() / 3600.0
        floor = c.asked_kw[t] if t < len(c.asked_kw) else 0.0
        cost = window.cost_per_kwh * hours + _EPS
        out.append(_Column(-1, t, max(upper, floor), cost, weight, floor))
    return out, None


_EPS_T = timedelta(microseconds=1)


def _spread(col: _Column, requested_kw: float, hours: float, max_share: float) -> list[_Column]:
    """The column as is when the site's counted kW stays within `max_share` of the request,
    else split at that share: the part beyond it costs CONCENTRATION_PER_KWH more."""
    if max_share >= 1.0 or col.weight <= _EPS:
        return [col]
    within = max_share * requested_kw / col.weight
    if col.upper <= within + _EPS:
        return [col]
    extra = col.cost + CONCENTRATION_PER_KWH * hours
    return [
        replace(col, upper=within, lower=min(col.lower, within)),
        replace(col, upper=col.upper - within, cost=extra, lower=max(0.0, col.lower - within)),
    ]


def allocate(
    candidates: Sequence[Candidate],
    request: Request,
    margin: float = 1.0,
    max_share: float = 1.0,
) -> Allocation:
    """The least-cost split of `request` over `candidates` (see the module docstring); each
    site counted for at most `max_share` of an interval's request unless the others cannot
    take the rest (1: no spread)."""
    t0 = time.perf_counter()
    n = len(request.intervals)
    requested = tuple(
        iv.kw if k >= request.first else 0.0 for k, iv in enumerate(request.intervals)
    )
    excluded: dict[str, str] = {}
    cols: list[_Column] = []
    ids = [c.site_id for c in candidates]
    for s, c in enumerate(candidates):
        rows, why = _eligible(c, request, margin)
        if why is not None:
            excluded[c.site_id] = why
        for col in rows:
            hours = request.intervals[col.interval].duration.total_seconds() / 3600.0
            cols += _spread(replace(col, site=s), requested[col.interval], hours, max_share)
    x = _solve(cols, requested, n) if cols else np.zeros(0)
    sites: dict[str, list[float]] = {}
    expected = [0.0] * n
    for col, v in zip(cols, x, strict=True):
        kw = float(v) if v > 1e-4 else 0.0
        sites.setdefault(ids[col.site], [0.0] * n)[col.interval] += kw
        expected[col.interval] += col.weight * kw
    sites = {s: [round(kw, 3) for kw in v] for s, v in sites.items()}
    expected_t = tuple(round(min(e, r), 3) for e, r in zip(expected, requested, strict=True))
    allocated = {s: tuple(v) for s, v in sites.items() if any(v)}
    return Allocation(
        sites=allocated,
        expected_kw=expected_t,
        requested_kw=requested,
        excluded=excluded,
        reason=_uncovered(requested, expected_t),
        solve_s=time.perf_counter() - t0,
    )


def _solve(cols: list[_Column], requested: tuple[float, ...], n: int) -> np.ndarray:
    m = len(cols)
    lp = highspy.HighsLp()
    lp.num_col_ = m + n
    lp.num_row_ = n
    lp.col_cost_ = np.array([c.cost for c in cols] + [PENALTY_PER_KWH] * n)
    lp.col_lower_ = np.array([c.lower for c in cols] + [0.0] * n)
    lp.col_upper_ = np.array([c.upper for c in cols] + [highspy.kHighsInf] * n)
    lp.row_lower_ = np.array(requested, dtype=float)
    lp.row_upper_ = np.full(n, highspy.kHighsInf)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.arange(m + n + 1, dtype=np.int32)
    lp.a_matrix_.index_ = np.array([c.interval for c in cols] + list(range(n)), dtype=np.int32)
    lp.a_matrix_.value_ = np.array([c.weight for c in cols] + [1.0] * n)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"allocation LP: {h.modelStatusToString(h.getModelStatus())}")
    return np.asarray(h.getSolution().col_value)[:m]


def _uncovered(requested: tuple[float, ...], expected: tuple[float, ...]) -> str | None:
    short = [
        (k, r - e) for k, (r, e) in enumerate(zip(requested, expected, strict=True)) if r - e > 0.01
    ]
    if not short:
        return None
    k, kw = max(short, key=lambda p: p[1])
    return (
        f"the sites' offers cannot cover the district request in {len(short)} interval(s); "
        f"interval {k} is short by {kw:.1f} of {requested[k]:.1f} kW"
    )
