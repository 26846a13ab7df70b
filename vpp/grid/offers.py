"""Flexibility offers (docs/grid-messages.md, "Offer"): what a site (or a district) can shed
or cap over the next hours, for how long, how surely and at what cost; and the request for
a fresh one. An aggregator allocates a district request over these.

An offer is a grid of windows: each start (on the quarter hour, from `notice` onward over the
offer's horizon) times each duration from 15 min to 4 h. Per window, `curtail_kw` is the
reduction below the site's baseline the planner expects to hold over the whole window,
`curtail_kw_p90` the part it is 90 % sure of (from the planner and the site's delivery
record), `import_cap_kw` the lowest import ceiling it can hold over the window, and
`cost_per_kwh` what delivering `curtail_kw` costs the site per kWh shed (lost service,
battery wear, energy bought back later), in the site's currency.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field, model_validator

from vpp.grid.messages import Finite, NonNegative, WireModel
from vpp.grid.types import Duration, Kw, Label, Time, Version

OFFER_DURATIONS = tuple(timedelta(minutes=m) for m in (15, 30, 60, 120, 240))
"""The window lengths an offer gives (15 min to 4 h)."""

MAX_OFFER_WINDOWS = 2000
"""At most this many windows in one offer (a day of quarter-hour starts × 5 durations is
480)."""

RequestId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


class OfferWindow(WireModel):
    """What the site can do if asked to act from `start` for `duration`."""

    start: Time
    duration: Duration
    curtail_kw: NonNegative
    """Expected reduction below the baseline, held over the whole window (kW)."""
    curtail_kw_p90: NonNegative
    """The reduction the site is 90 % sure of (kW, ≤ curtail_kw)."""
    import_cap_kw: Kw | None = None
    """The lowest import ceiling the site can hold over the window (kW); null: none."""
    cost_per_kwh: Finite
    """The site's cost of delivering `curtail_kw`, per kWh shed (currency/kWh)."""

    @model_validator(mode="after")
    def _p90_within(self) -> OfferWindow:
        if self.curtail_kw_p90 > self.curtail_kw + 1e-9:
            raise ValueError("curtail_kw_p90 must not exceed curtail_kw")
        return self


class Offer(WireModel):
    """A site's flexibility offer, published retained on `PREFIX/SITE/offers`."""

    v: Version = 1
    site_id: Label
    offer_id: Label
    """Unique per offer of this site (a new one replaces the last)."""
    request_id: RequestId | None = None
    """Echo of the offer request this answers; null for the periodic offer."""
    created: Time
    valid_until: Time
    """After this the offer is stale: ask again."""
    notice: Duration
    """The least time between an event's arrival and its start that the site needs."""
    min_rest: Duration
    """The least time between two events the site accepts."""
    currency: Label = "CNY"
    windows: Annotated[list[OfferWindow], Field(max_length=MAX_OFFER_WINDOWS)]

    @model_validator(mode="after")
    def _valid_after_created(self) -> Offer:
        if self.valid_until <= self.created:
            raise ValueError("valid_until must be after created")
        return self


class OfferRequest(WireModel):
    """Grid (or aggregator) → site on `PREFIX/SITE/offer_requests`: publish a fresh offer."""

    v: Version = 1
    request_id: RequestId
    ts: Time
