"""Small problems for the optimiser tests (short horizons keep the suite fast)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from optimiser import Problem, SiteForecast, TimeGrid

START = datetime(2026, 7, 1, tzinfo=UTC)


def site(n: int, price: float | list[float] = 0.2, **kw: Any) -> SiteForecast:
    prices = [price] * n if isinstance(price, float | int) else price
    args: dict[str, Any] = {
        "base_load_kw": [20.0] * n,
        "pv_kw": [0.0] * n,
        "outdoor_temp_c": [30.0] * n,
        "import_price": prices,
        "export_price": [min(0.0, p) if p < 0 else 0.5 * p for p in prices],
        "import_limit_kw": 500.0,
        "export_limit_kw": 500.0,
    }
    args.update(kw)
    return SiteForecast(**args)


def problem(n: int, assets: list[Any], price: float | list[float] = 0.2, **kw: Any) -> Problem:
    site_kw = kw.pop("site_kw", {})
    return Problem(
        grid=TimeGrid(start=START, steps=n), site=site(n, price, **site_kw), assets=assets, **kw
    )


def at(step: int) -> datetime:
    """The start of step `step` on the default 15-minute grid."""
    return START + timedelta(minutes=15 * step)
