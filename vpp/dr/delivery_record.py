"""The site's delivery record: how much of what it expected to deliver it did, from the
store's past curtailments (what an offer's `curtail_kw_p90` is scaled by)."""

from __future__ import annotations

import numpy as np

from vpp.store.store import Store

DEFAULT_CONFIDENCE = 0.9
"""The confidence factor of a site without a delivery record."""

QUANTILE = 0.1
"""The delivered/expected ratio 90 % of past intervals reached."""


def delivery_ratios(store: Store) -> list[float]:
    """delivered ÷ expected per interval of every completed curtailment the site opted in
    to: the final report's `delivered_kw` over the `expected_kw` it opted in with
    (intervals with under 0.5 kW expected, or not measured, are left out)."""
    ratios: list[float] = []
    for ev in store.events(["completed"]):
        event = ev.payload.get("event") or {}
        expected = ev.payload.get("expected_kw") or []
        if event.get("signal") != "curtail_kw" or not expected:
            continue
        finals = store.reports(ev.event_id, final_only=True)
        intervals = finals[-1].get("intervals") or [] if finals else []
        for want, iv in zip(expected, intervals, strict=False):
            got = iv.get("delivered_kw") if isinstance(iv, dict) else None
            if isinstance(want, int | float) and want > 0.5 and isinstance(got, int | float):
                ratios.append(float(got) / float(want))
    return ratios


def confidence_factor(store: Store) -> float:
    """The 10th percentile of `delivery_ratios`, clipped to [0, 1]; DEFAULT_CONFIDENCE
    without a record."""
    ratios = delivery_ratios(store)
    if not ratios:
        return DEFAULT_CONFIDENCE
    return float(np.clip(np.quantile(ratios, QUANTILE), 0.0, 1.0))
