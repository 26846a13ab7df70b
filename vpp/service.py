"""The agent a site runs: devices, control and demand response put together (`vpp run`).

The composition root: every part gets its collaborators here, through its constructor.

The DR controller plans with a forecast of the building from the site file's own model (each
device's `sim:` block, or its kind's defaults), the built-in weather shape of
`sim.environment`, the base load of `sim.base_load` and the site's tariff: the same twin the
replay uses, so a strategy tried in replay is the one that runs on site.
"""

from __future__ import annotations

from pathlib import Path

from devices.clock import Clock
from vpp.agent import Agent, CycleRequests
from vpp.broker import default_client_id
from vpp.control.arbiter import Arbiter
from vpp.control.controller import Controller, NoController
from vpp.control.dispatcher import Dispatcher
from vpp.control.strategy import REGISTRY, strategy_named
from vpp.dr.controller import DrController
from vpp.dr.forecast import TwinForecast
from vpp.drivers import SiteDevices, mqtt_hub_for
from vpp.grid.links import LinkContext, site_link
from vpp.site import BrokerConfig, Site
from vpp.site_model import base_load, environment
from vpp.store.store import Store

STRATEGIES = tuple(REGISTRY)
"""The strategies' names (vpp.control.strategy.REGISTRY): optimiser, rules, none."""


def site_forecast(site: Site) -> TwinForecast:
    """The site's forecast twin (building model, weather shape, base load, tariff)."""
    return TwinForecast(site, environment(site), base_load(site), site.config.tariff)


def site_agent(
    site: Site,
    clock: Clock,
    *,
    broker: BrokerConfig | None = None,
    store_path: Path | None = None,
    strategy: str = "optimiser",
    client_id: str | None = None,
    forecast: TwinForecast | None = None,
    demand_response: bool = True,
    offers: bool = True,
) -> Agent:
    """An agent for `site` with its DR controller (`strategy`: optimiser, rules or none);
    `forecast` defaults to the site's own twin (a replay gives its scenario's). Without
    `demand_response` the agent has no controller: the site limit alone governs. Without
    `offers` it publishes no flexibility offers, whatever the site file says."""
    strat = strategy_named(strategy)
    broker = broker or site.config.broker or BrokerConfig()
    store = Store(
        store_path or site.config.store.file(site.id),
        telemetry_resolution_s=site.config.store.telemetry_resolution_s,
    )
    # The grid links the site file names (our MQTT contract unless grid.mqtt is false,
    # OpenADR 3.1 / 2.0b); the site's MQTT devices share the broker.
    client_id = client_id or broker.client_id or default_client_id(site.id)
    link = site_link(LinkContext(site, clock, store, broker, client_id))
    devices = SiteDevices(site, clock, mqtt_hub_for(site, clock, broker, client_id))
    dispatcher = Dispatcher(site)
    cycles = CycleRequests(clock)
    controller: Controller = NoController()
    if demand_response:
        controller = DrController(
            site,
            clock,
            forecast or site_forecast(site),
            store=store,
            link=link,
            dispatcher=dispatcher,
            snapshot=devices.snapshot,
            request_cycle=cycles.request,
            cycle_idle=cycles.idle,
            strategy=strat,
            offers=offers,
        )
    return Agent(
        site,
        clock,
        store=store,
        link=link,
        devices=devices,
        dispatcher=dispatcher,
        arbiter=Arbiter(site.config.limits.import_kw),
        controller=controller,
        strategy=strat,
        cycles=cycles,
    )
