"""The stand-in offers of a fleet replay: until site agents publish their own flexibility
offers (`PREFIX/SITE/offers`), the replay publishes one for each site (retained) from the
fleet scenario's `offer_kw` and `cost_per_kwh`, as the aggregator's tests do. The one place
to remove when agents offer."""

from __future__ import annotations

from datetime import datetime, timedelta

from vpp.fleet.emulator import SiteSpec, make_offer
from vpp.grid.offers import Offer
from vpp.replay.fleet_scenario import FleetScenario


def stand_in_offers(fs: FleetScenario, now: datetime) -> list[Offer]:
    """One offer per site at `now`, valid over the whole replay (and an hour after)."""
    horizon = fs.duration + timedelta(hours=1)
    out = []
    for site in fs.config.sites:
        sc = fs.sites[fs.config.sites.index(site)]
        spec = SiteSpec(
            sc.site.id,
            baseline_kw=site.offer_kw,  # only the window's import cap depends on it
            capacity_kw=site.offer_kw,
            cost_per_kwh=site.cost_per_kwh,
            p90_share=1.0,
            horizon=horizon,
        )
        out.append(make_offer(spec, now))
    return out
