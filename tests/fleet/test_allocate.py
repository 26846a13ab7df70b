"""The district allocation as a pure function (vpp.fleet.allocate): cost order, each site's
limits, the reliability margin, notice, rest time, an uncovered request, and the solve time
for 1 000 sites."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from vpp.fleet.allocate import Candidate, Request, RequestInterval, allocate
from vpp.fleet.emulator import SiteSpec, make_offer

NOW = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)
Q = timedelta(minutes=15)


def _site(site_id: str, cost: float, kw: float = 50.0, **kw_spec: object) -> Candidate:
    spec = SiteSpec(site_id, capacity_kw=kw, cost_per_kwh=cost, p90_share=1.0, **kw_spec)  # type: ignore[arg-type]
    return Candidate(offer=make_offer(spec, NOW))


def _request(kw: list[float], start: datetime = NOW + Q, first: int = 0) -> Request:
    ivs = [RequestInterval(start + k * Q, Q, v) for k, v in enumerate(kw)]
    return Request(ivs, NOW, first)


def test_cheapest_sites_first() -> None:
    """80 kW over three 50 kW sites: the cheapest gives 50, the next 30, the dearest nothing."""
    sites = [_site("dear", 3.0), _site("cheap", 1.0), _site("mid", 2.0)]
    a = allocate(sites, _request([80.0, 80.0]))
    assert a.sites == {"cheap": (50.0, 50.0), "mid": (30.0, 30.0)}
    assert a.expected_kw == (80.0, 80.0)
    assert a.reason is None


def test_each_site_within_its_offer_and_cap() -> None:
    """A fleet-file cap (max_kw) and the offer's curtail_kw both bound a site."""
    cheap = Candidate(offer=_site("cheap", 1.0, kw=60.0).offer, max_kw=20.0)
    a = allocate([cheap, _site("mid", 2.0, kw=60.0)], _request([70.0]))
    assert a.sites == {"cheap": (20.0,), "mid": (50.0,)}


def test_reliability_margin_over_allocates_by_confidence() -> None:
    """A site 80 % sure (p90 share) with a record of 0.5: margin 1 counts each asked kW as
    0.4, margin 0 as 1."""
    offer = make_offer(SiteSpec("s", capacity_kw=100.0, p90_share=0.8), NOW)
    c = Candidate(offer=offer, record=0.5)
    full = allocate([c], _request([20.0]), margin=1.0)
    assert full.sites == {"s": (50.0,)}
    none = allocate([c], _request([20.0]), margin=0.0)
    assert none.sites == {"s": (20.0,)}


def test_notice_leaves_a_site_out_until_it_can_act() -> None:
    """A site with 30 min notice cannot take an event starting in 15 min: the others cover
    its first interval, it takes part from the interval it can meet."""
    slow = _site("slow", 1.0, notice=timedelta(minutes=30))
    quick = _site("quick", 2.0, kw=100.0)
    a = allocate([slow, quick], _request([60.0, 60.0, 60.0]))
    assert a.sites["slow"] == (0.0, 50.0, 50.0)
    assert a.sites["quick"] == (60.0, 10.0, 10.0)
    late = allocate([slow], _request([60.0], start=NOW))
    assert "notice" in late.excluded["slow"]


def test_a_site_in_the_event_is_modified_without_notice() -> None:
    """Re-allocating from interval 1: a site already taking part (in_event) is asked more at
    once; limit_kw caps one that falls behind."""
    slow = Candidate(offer=_site("slow", 1.0, notice=timedelta(hours=1)).offer, in_event=True)
    short = Candidate(offer=_site("short", 0.5).offer, in_event=True, limit_kw=10.0)
    a = allocate([slow, short], _request([40.0, 40.0], first=1))
    assert a.sites == {"slow": (0.0, 30.0), "short": (0.0, 10.0)}
    assert a.requested_kw == (0.0, 40.0)


def test_rest_time_after_the_last_event() -> None:
    """A site whose last event ended 1 h ago with a 2 h rest is not asked."""
    rested = Candidate(
        offer=_site("r", 1.0, min_rest=timedelta(hours=2)).offer,
        last_event_end=NOW - timedelta(hours=1),
    )
    a = allocate([rested, _site("other", 5.0)], _request([30.0]))
    assert a.sites == {"other": (30.0,)}
    assert "rest" in a.excluded["r"]


def test_uncovered_request_says_why() -> None:
    """150 kW on offer, 200 asked: all of it is allocated, the reason names the shortfall."""
    sites = [_site(f"s{i}", 1.0 + i) for i in range(3)]
    a = allocate(sites, _request([200.0, 100.0]))
    assert a.expected_kw == (150.0, 100.0)
    assert a.reason is not None and "short by 50.0 of 200.0 kW" in a.reason
    assert a.covered_share() == pytest.approx(250 / 300)


def test_expired_offer_is_not_used() -> None:
    c = _site("old", 1.0)
    a = allocate([c], Request([RequestInterval(NOW + Q, Q, 10.0)], NOW + timedelta(days=1)))
    assert a.sites == {} and "expired" in a.excluded["old"]


def test_thousand_sites_are_allocated() -> None:
    """1 000 sites, 8 intervals: the split is found and covers every interval. Its speed (goal
    0.5 s) is bench/fleet.py's figure, not a timed assertion (a loaded machine fails those)."""
    sites = [_site(f"s{i:04d}", 1.0 + (i % 97) / 10, kw=20.0 + i % 30) for i in range(1000)]
    req = _request([5000.0] * 8)
    t0 = time.perf_counter()
    a = allocate(sites, req)
    wall = time.perf_counter() - t0
    print(f"allocation of 1000 sites x 8 intervals: {wall:.3f} s (LP {a.solve_s:.3f} s)")
    assert a.reason is None
    assert all(sum(v[k] for v in a.sites.values()) == pytest.approx(5000.0) for k in range(8))


def test_a_window_starting_just_after_the_event_serves_it() -> None:
    """Offer windows start on quarter hours from the notice on: an offer made at 06:03
    (first window 06:15) serves an event from 06:05 to 06:35 (its 06:15 + 30 min window);
    one from 06:00 is more than a quarter hour before its first window."""
    offer = make_offer(SiteSpec("s", capacity_kw=30.0, p90_share=1.0), NOW + timedelta(minutes=3))
    c = Candidate(offer=offer)
    five = timedelta(minutes=5)
    ok = allocate([c], Request([RequestInterval(NOW + five, 6 * five, 10.0)], NOW + five / 2))
    assert ok.sites == {"s": (10.0,)}
    assert offer.windows[0].start == NOW + Q
    early = allocate([c], Request([RequestInterval(NOW, 6 * five, 10.0)], NOW - five))
    assert early.sites == {} and "no kW for that span" in early.excluded["s"]


def test_spread_caps_each_sites_share_while_others_can_take_the_rest() -> None:
    """90 kW over four 100 kW sites: least cost alone asks all of it of the cheapest; with
    max_share 0.35 none is counted for more than 31.5 kW, the cheapest three take it. Two
    sites only: the cap is soft, the cheaper takes what the other cannot."""
    sites = [_site(f"s{i}", 1.0 + i, kw=100.0) for i in range(4)]
    alone = allocate(sites, _request([90.0]))
    assert alone.sites == {"s0": (90.0,)}
    spread = allocate(sites, _request([90.0]), max_share=0.35)
    assert spread.sites == {"s0": (31.5,), "s1": (31.5,), "s2": (27.0,)}
    assert spread.reason is None
    small = Candidate(offer=_site("small", 5.0, kw=20.0).offer)
    soft = allocate([sites[0], small], _request([90.0]), max_share=0.35)
    assert soft.sites == {"s0": (70.0,), "small": (20.0,)}
    assert soft.expected_kw == (90.0,) and soft.reason is None


def test_a_site_in_the_event_takes_the_running_intervals_remainder() -> None:
    """A re-allocation 5 min into interval 0 (a site lost): a site already acting may be
    asked more in the running interval (a modification), a new one only from the first
    interval its notice allows."""
    acting = Candidate(offer=_site("acting", 2.0).offer, in_event=True)
    new = _site("new", 1.0)
    req = Request(_request([40.0, 40.0]).intervals, NOW + Q + timedelta(minutes=5), first=0)
    a = allocate([acting, new], req)
    assert a.sites["acting"][0] == 40.0
    assert a.sites.get("new", (0.0, 0.0))[0] == 0.0
    assert a.expected_kw[0] == 40.0


def test_a_re_allocation_keeps_what_acting_sites_are_asked() -> None:
    """A site acting whose newest offer has nothing for the rest of the event (made with its
    commitment in its plan) keeps its 30 kW (a floor), counted at its weight; the others
    take only the rest. Without the floor it was left out and its part dropped."""
    spent = make_offer(SiteSpec("spent", capacity_kw=0.0, p90_share=1.0), NOW)
    acting = Candidate(offer=spent, in_event=True, asked_kw=(30.0, 30.0))
    other = Candidate(offer=_site("other", 2.0, kw=50.0).offer, in_event=True)
    a = allocate([acting, other], _request([50.0, 50.0], first=1))
    assert a.sites == {"spent": (0.0, 30.0), "other": (0.0, 20.0)}
    assert a.reason is None


def test_a_window_holding_the_span_serves_it_and_the_notice_has_a_grace() -> None:
    """Windows every hour (06:15, 07:15): an event from 06:45 to 07:15 is inside 06:15's
    hour and served by it. One sent 15 min ahead and allocated 5 s later (a 15 min
    notice) still gets its first interval."""
    offer = make_offer(SiteSpec("s", capacity_kw=30.0, p90_share=1.0), NOW)
    hourly = offer.model_copy(
        update={
            "windows": [
                w
                for w in offer.windows
                if (w.start - offer.windows[0].start) % (4 * Q) == timedelta(0)
            ]
        }
    )
    c = Candidate(offer=hourly)
    start = NOW + 3 * Q
    a = allocate(
        [c], Request([RequestInterval(start, Q, 10.0), RequestInterval(start + Q, Q, 10.0)], NOW)
    )
    assert a.sites == {"s": (10.0, 10.0)}
    late = allocate([c], Request([RequestInterval(NOW + Q, Q, 10.0)], NOW + timedelta(seconds=5)))
    assert late.sites == {"s": (10.0,)}
