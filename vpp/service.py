"""The agent a site runs: devices, control and demand response put together (`vpp run`).

The DR controller plans with a forecast of the building from the site file's own model (each
device's `sim:` block, or its kind's defaults), the built-in weather shape of
`sim.environment`, the base load of `sim.base_load` and the site's tariff: the same twin the
replay uses, so a strategy tried in replay is the one that runs on site.
"""

from __future__ import annotations

from pathlib import Path

from devices.clock import Clock
from vpp.agent import Agent
from vpp.dr.controller import DrController
from vpp.dr.forecast import TwinForecast
from vpp.site import BrokerConfig, Site
from vpp.site_model import base_load, environment

STRATEGIES = ("optimiser", "rules", "none")


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
) -> Agent:
    """An agent for `site` with its DR controller attached (`strategy`: optimiser, rules or
    none); `forecast` defaults to the site's own twin (a replay gives its scenario's)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    agent = Agent(site, clock, broker=broker, store_path=store_path, client_id=client_id)
    DrController(agent, forecast or site_forecast(site), strategy=strategy)
    if strategy == "none":
        agent.control_enabled = False
    return agent
