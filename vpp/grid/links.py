"""The registry of grid link kinds (one per protocol) and the site's links from its file.

`grid:` in the site file names the links: our MQTT contract unless `grid.mqtt: false`,
`openadr3:` and `openadr2b:` when present. A protocol registers a factory under its key;
`site_link` builds what the file names, one link as itself and several as a FanoutLink.
Factories import their protocol's code when called, so a site without OpenADR never loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from devices.clock import Clock
from vpp.grid.fanout import FanoutLink
from vpp.grid.link import GridLink
from vpp.site import BrokerConfig, Site
from vpp.store.store import Store


@dataclass(frozen=True)
class LinkContext:
    """What a link factory gets: the site, the one clock, the store (a link's durable outbox
    and state live there), and the MQTT broker settings with the agent's client id."""

    site: Site
    clock: Clock
    store: Store
    broker: BrokerConfig
    client_id: str


LinkFactory = Callable[[LinkContext], GridLink]

REGISTRY: dict[str, LinkFactory] = {}
"""Grid link kinds by their `grid:` key."""


def register(key: str) -> Callable[[LinkFactory], LinkFactory]:
    def add(factory: LinkFactory) -> LinkFactory:
        REGISTRY[key] = factory
        return factory

    return add


@register("mqtt")
def _mqtt(ctx: LinkContext) -> GridLink:
    from vpp.mqtt_link import MqttLink

    return MqttLink(
        ctx.broker,
        ctx.site.id,
        ctx.clock,
        client_id=ctx.client_id,
        extensions=ctx.site.config.grid.extensions,
        store=ctx.store,
        offers=ctx.site.config.grid.offers.enabled,
    )


def configured(site: Site) -> list[str]:
    """The `grid:` keys of the links the site file names, the native contract first."""
    grid = site.config.grid
    keys = ["mqtt"] if grid.mqtt else []
    keys += [key for key in ("openadr3", "openadr2b") if getattr(grid, key) is not None]
    return keys


def site_link(ctx: LinkContext) -> GridLink:
    """The site's grid link: the one it names, or all of them behind one FanoutLink."""
    links: dict[str, GridLink] = {}
    for key in configured(ctx.site):
        factory = REGISTRY.get(key)
        if factory is None:
            raise ValueError(f"grid.{key}: this build of vpp has no {key} link")
        links[key] = factory(ctx)
    if len(links) == 1:
        return next(iter(links.values()))
    return FanoutLink(links)


@register("openadr3")
def _openadr3(ctx: LinkContext) -> GridLink:
    from vpp.grid.oadr3.link import Oadr3Link

    return Oadr3Link(ctx.site, ctx.clock, ctx.store)


@register("openadr2b")
def _openadr2b(ctx: LinkContext) -> GridLink:
    from vpp.grid.openadr2b.link import Oadr2bLink

    grid = ctx.site.config.grid
    if grid.openadr2b is None:
        raise ValueError("grid.openadr2b: not configured")
    return Oadr2bLink(grid.openadr2b, ctx.site.id, ctx.clock, levels=grid.simple_levels_kw)
