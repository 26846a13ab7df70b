"""Forecasts for planning, from the site's building model (the `sim:` blocks of the site
file: base-load shape, zone RC and gains, PV rating, load shapes), its weather and tariff.

In replay the model is the simulator's own, so forecasts are exact apart from the
base-load noise; on a real site the same blocks hold the fitted building model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from building.params import BaseLoadParams
from building.weather import Environment
from optimiser import TimeGrid
from vpp.kinds import plugin_for
from vpp.site import Site, Tariff

PriceSource = Callable[[list[datetime]], tuple[list[float], list[float], list[float]]]
"""Times → (import price, export price, carbon kg/kWh) at each, e.g. from a scenario."""


@dataclass(frozen=True)
class SiteSeries:
    """Per-step forecasts on a planning grid (kW, degC, currency/kWh, kg/kWh)."""

    base_load_kw: list[float]
    pv_kw: list[float]
    outdoor_temp_c: list[float]
    import_price: list[float]
    export_price: list[float]
    carbon_kg_per_kwh: list[float]
    device_series: dict[str, list[float]]
    """Per device, its kind's own series (a zone's internal gain, a load group's draw)."""


class TwinForecast:
    """Forecasts evaluated at each step's midpoint from the site's building model."""

    def __init__(
        self,
        site: Site,
        env: Environment,
        base_load: BaseLoadParams,
        tariff: Tariff | None = None,
        params: dict[str, object] | None = None,
        prices: PriceSource | None = None,
    ) -> None:
        self.site = site
        self.env = env
        self.base_load = base_load
        self.tariff = tariff or site.config.tariff
        self.params = params or {}
        self.prices = prices

    def device_params(self, device_id: str) -> object:
        """The building model of a device (its `sim:` block, or the kind's defaults)."""
        if device_id in self.params:
            return self.params[device_id]
        d = self.site.device(device_id)
        return plugin_for(d.kind).model(d)

    def _price(self, series: object, t: datetime) -> float:
        hour = t.astimezone(self.env.tz).hour
        return Tariff.at_hour(series, hour)  # type: ignore[arg-type]

    def series(self, grid: TimeGrid) -> SiteSeries:
        mids = [grid.start + grid.step * (k + 0.5) for k in range(grid.steps)]
        env = self.env
        generation: list[list[float]] = []
        own: dict[str, list[float]] = {}
        for d in self.site.devices:
            fc = plugin_for(d.kind).forecast(d, self.device_params(d.id), env, mids)
            if fc.generation_kw is not None:
                generation.append(list(fc.generation_kw))
            if fc.own_kw is not None:
                own[d.id] = list(fc.own_kw)
        tf = self.tariff
        if self.prices is not None:
            imp, exp, co2 = self.prices(mids)
        else:
            imp = [self._price(tf.import_per_kwh, t) for t in mids]
            exp = [self._price(tf.export_per_kwh, t) for t in mids]
            co2 = [self._price(tf.carbon_kg_per_kwh, t) for t in mids]
        return SiteSeries(
            base_load_kw=[
                max(0.0, self.base_load.peak_kw * env.shape(self.base_load.shape, t)) for t in mids
            ],
            pv_kw=[sum((g[k] for g in generation), 0.0) for k in range(len(mids))],
            outdoor_temp_c=[env.outdoor_temp_c(t) for t in mids],
            import_price=imp,
            export_price=exp,
            carbon_kg_per_kwh=co2,
            device_series=own,
        )
