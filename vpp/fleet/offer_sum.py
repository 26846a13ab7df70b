"""The district's own offer: the sum of its member sites' live offers, window by window
(same start and duration), so that a grid operator (or a higher aggregator) can ask the
district as it asks a site. Per window: curtail_kw and curtail_kw_p90 are sums, the cost is
the kW-weighted mean, the import cap is left out (the district's baseline is not known
ahead); the notice and rest are the longest of the sites' (what every site can meet)."""

from __future__ import annotations

from datetime import datetime, timedelta

from vpp.grid.offers import MAX_OFFER_WINDOWS, Offer, OfferWindow


def district_offer(
    district_id: str, offers: list[Offer], now: datetime, request_id: str | None = None
) -> Offer | None:
    """The sum of `offers` still valid at `now` (answering `request_id`, when one asked);
    None when there is none."""
    live = [o for o in offers if o.valid_until > now]
    if not live:
        return None
    acc: dict[tuple[datetime, timedelta], list[float]] = {}
    for o in live:
        for w in o.windows:
            a = acc.setdefault((w.start, w.duration), [0.0, 0.0, 0.0])
            a[0] += w.curtail_kw
            a[1] += w.curtail_kw_p90
            a[2] += w.curtail_kw * w.cost_per_kwh
    windows = [
        OfferWindow(
            start=s,
            duration=d,
            curtail_kw=round(kw, 3),
            curtail_kw_p90=round(min(p90, kw), 3),
            cost_per_kwh=round(cost / kw, 4) if kw > 0 else 0.0,
        )
        for (s, d), (kw, p90, cost) in sorted(acc.items())
    ][:MAX_OFFER_WINDOWS]
    return Offer(
        site_id=district_id,
        offer_id=f"{district_id}-{int(now.timestamp())}"[:64],
        request_id=request_id,
        created=now,
        valid_until=min(o.valid_until for o in live),
        notice=max(o.notice for o in live),
        min_rest=max(o.min_rest for o in live),
        currency=live[0].currency,
        windows=windows,
    )
