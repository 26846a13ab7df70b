"""Flexibility offers without a broker: the windows' grid, the confidence factor from the
store's delivery record, the site setting and which link carries offers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devices.clock import VirtualClock
from tests.grid.helpers import NOW
from tests.grid.live import small_site_data
from vpp.dr.controller import DrController
from vpp.dr.delivery_record import DEFAULT_CONFIDENCE, confidence_factor, delivery_ratios
from vpp.dr.offers import offer_windows
from vpp.grid.fanout import FanoutLink
from vpp.grid.offer_link import offer_channel
from vpp.grid.offers import OFFER_DURATIONS
from vpp.mqtt_link import MqttLink
from vpp.service import site_agent
from vpp.site import BrokerConfig, OfferConfig, SiteError, parse_site
from vpp.store.store import Store

MIN = timedelta(minutes=1)


def test_windows_start_on_the_quarter_hour_from_the_notice_over_the_horizon() -> None:
    now = datetime(2026, 7, 15, 6, 7, 30, tzinfo=UTC)
    specs = offer_windows(now, OfferConfig(), now + timedelta(hours=24))
    starts = sorted({s for s, _ in specs})
    first = datetime(2026, 7, 15, 6, 30, tzinfo=UTC)  # 06:22:30 rounded up
    assert starts == [first + timedelta(hours=h) for h in range(4)]
    assert len(specs) == 4 * len(OFFER_DURATIONS)
    # Half-hourly over 2 h, nothing that ends past the plan's horizon.
    config = OfferConfig(horizon_h=2, start_every_min=30, notice_min=0)
    specs = offer_windows(now, config, datetime(2026, 7, 15, 8, 0, tzinfo=UTC))
    assert min(s for s, _ in specs) == datetime(2026, 7, 15, 6, 15, tzinfo=UTC)
    assert all(s + d <= datetime(2026, 7, 15, 8, 0, tzinfo=UTC) for s, d in specs)
    assert (datetime(2026, 7, 15, 6, 15, tzinfo=UTC), timedelta(hours=4)) not in specs
    assert len({s for s, _ in specs}) == 4


def _completed(
    store: Store, event_id: str, expected: list[float], delivered: list[Any], signal: str
) -> None:
    event = {"event_id": event_id, "signal": signal, "intervals": []}
    payload = {"event": event, "expected_kw": expected, "reason": None}
    store.save_event(NOW, event_id, 0, payload, "completed")
    intervals = [{"delivered_kw": d} for d in delivered]
    store.add_report(NOW, event_id, 0, {"intervals": intervals[:1]}, final=False)
    store.add_report(NOW, event_id, 0, {"intervals": intervals}, final=True)


def test_the_confidence_factor_is_the_tenth_percentile_of_the_delivery_record(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "s.sqlite")
    assert confidence_factor(store) == DEFAULT_CONFIDENCE
    # Ten intervals: 0.5, 0.6, ... 1.4 of what was expected; one unmeasured, one with
    # nothing expected, a cap event: left out.
    _completed(store, "a", [100.0] * 6, [50, 60, 70, 80, 90, None], "curtail_kw")
    _completed(store, "b", [50.0] * 5 + [0.0], [50, 55, 60, 65, 70, 10], "curtail_kw")
    _completed(store, "c", [100.0], [5.0], "import_cap_kw")
    store.save_event(
        NOW, "d", 0, {"event": {"signal": "curtail_kw"}, "expected_kw": None}, "opt_out"
    )
    ratios = delivery_ratios(store)
    assert sorted(ratios) == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4])
    assert confidence_factor(store) == pytest.approx(0.59)
    # Over-delivery alone never makes the factor more than 1.
    store2 = Store(tmp_path / "s2.sqlite")
    _completed(store2, "e", [10.0, 10.0], [20.0, 30.0], "curtail_kw")
    assert confidence_factor(store2) == 1.0


def test_the_offer_setting_is_checked_naming_the_field(tmp_path: Path) -> None:
    data = small_site_data()
    data["grid"] = {"offers": {"start_every_min": 20}}
    with pytest.raises(SiteError) as err:
        parse_site(data, tmp_path / "site.yaml")
    msg = str(err.value)
    assert "grid.offers.start_every_min" in msg and "\n" not in msg
    data["grid"] = {"offers": {"enabled": "yes"}}
    with pytest.raises(SiteError, match=r"grid\.offers\.enabled"):
        parse_site(data, tmp_path / "site.yaml")


@pytest.mark.parametrize(
    ("enabled", "strategy"), [(True, "optimiser"), (False, "optimiser"), (True, "rules")]
)
def test_offers_run_only_when_on_and_the_site_plans(
    tmp_path: Path, enabled: bool, strategy: str
) -> None:
    data = small_site_data()
    data["grid"] = {"offers": {"enabled": enabled}}
    site = parse_site(data, tmp_path / "site.yaml")
    clock = VirtualClock(NOW)
    agent = site_agent(
        site,
        clock,
        broker=BrokerConfig(port=1),
        store_path=tmp_path / "s.sqlite",
        strategy=strategy,
    )
    assert isinstance(agent.controller, DrController)
    on = enabled and strategy == "optimiser"
    assert (agent.controller.offers is not None) == on
    assert isinstance(agent.link, MqttLink)
    subscribed = "vpp/live-1/offer_requests" in agent.link._subscriptions
    assert subscribed == enabled
    agent.store.close()


def test_the_native_link_carries_offers_in_a_fanout(tmp_path: Path) -> None:
    clock = VirtualClock(NOW)
    mqtt = MqttLink(BrokerConfig(port=1), "s", clock, subscriptions=[])
    assert offer_channel(mqtt) is mqtt
    assert offer_channel(FanoutLink({"mqtt": mqtt})) is mqtt
    assert offer_channel(FanoutLink({"other": _NoOffers()})) is None  # type: ignore[dict-item]


class _NoOffers:
    """A grid link without the offer capability (as OpenADR's)."""
