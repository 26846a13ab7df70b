"""The grid link's offer capability: publish the site's flexibility offer, receive the
grid's offer requests (docs/grid-messages.md, "Flexibility offers"). Our MQTT contract
(vpp.mqtt_link.MqttLink) has it; a link without it (OpenADR) publishes no offers."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from vpp.grid.fanout import FanoutLink
from vpp.grid.link import GridLink
from vpp.grid.offers import Offer


@runtime_checkable
class OfferChannel(Protocol):
    """A grid link that carries offers."""

    def send_offer(self, offer: Offer) -> None:
        """Publish `offer` (it replaces the last one: retained)."""
        ...

    async def receive_offer_request(self) -> bytes:
        """The next offer request's raw payload (not yet validated; waits for one)."""
        ...


def offer_channel(link: GridLink) -> OfferChannel | None:
    """The link that carries the site's offers: `link` itself, or the first of a fan-out's
    links that can; None if none can."""
    if isinstance(link, OfferChannel):
        return link
    if isinstance(link, FanoutLink):
        return next((sub for sub in link.links.values() if isinstance(sub, OfferChannel)), None)
    return None
