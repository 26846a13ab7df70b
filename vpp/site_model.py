"""The building model of a site file: its weather (`sim.environment`, the site's time zone)
and base load (`sim.base_load`), as the agent's forecasts and the simulators read them."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from building.params import BaseLoadParams
from building.weather import Environment, EnvironmentParams
from devices.profile import format_validation_error
from vpp.site import Site, SiteError


def validated(model: Any, data: dict[str, Any] | None, where: str) -> Any:
    """`model` validated from `data`; a SiteError naming `where` and the field otherwise."""
    try:
        return model.model_validate(data or {})
    except ValidationError as e:
        raise SiteError(format_validation_error(where, e)) from e


def environment(site: Site, overrides: dict[str, Any] | None = None) -> Environment:
    """The site's weather model (its `sim.environment`, time zone from the site)."""
    data = {"timezone": site.config.timezone, **site.config.sim.environment, **(overrides or {})}
    return Environment(validated(EnvironmentParams, data, f"{site.source}: sim.environment"))


def base_load(site: Site) -> BaseLoadParams:
    """The site's uncontrolled load behind the meter (its `sim.base_load`)."""
    return validated(BaseLoadParams, site.config.sim.base_load, f"{site.source}: sim.base_load")
