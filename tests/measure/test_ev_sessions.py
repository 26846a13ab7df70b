"""EV energy per session: a car is credited only the energy it received, whether the
charger's counter resets when a car plugs in or keeps counting across cars.

Store-level (real telemetry windows in a real SQLite store, as the agent writes them from the
charger's 5-s readings) for the replay's accounting, and the agent's EV adapter fed the
readings a charger gives.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.replay.helpers import OFFICE
from vpp.control.types import DeviceView
from vpp.kinds.ev_charger import EvFlex
from vpp.measure.ev import counter_increase_kwh, session_energy_kwh
from vpp.replay import readings as rd
from vpp.replay.scenario import EvSession
from vpp.site import load_site
from vpp.store.store import Store

T0 = datetime(2026, 7, 15, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
STEP = timedelta(minutes=1)
# Two cars on one charger in a day: A 08:00-12:00 needing 20 kWh (10 kW for 2 h), B 13:00-
# 18:00 needing 15 kWh (10 kW for 1.5 h).
CAR_A = EvSession("ev1", T0, T0 + timedelta(hours=4), 20.0, 11.0)
CAR_B = EvSession("ev1", T0 + timedelta(hours=5), T0 + timedelta(hours=10), 15.0, 11.0)


def counter_at(t: datetime, cumulative: bool) -> float:
    """The charger's `session_energy_kwh` at `t`: A charges 10 kW from 08:00 to 10:00,
    B from 13:00 to 14:30; per session it resets when B plugs in."""
    h = (t - T0).total_seconds() / 3600
    a = 10.0 * min(max(h, 0.0), 2.0)
    b = 10.0 * min(max(h - 5.0, 0.0), 1.5)
    if h < 5.0:
        return a
    return a + b if cumulative else b


def charger_store(tmp_path: Path, cumulative: bool) -> Store:
    """The charger's readings every 5 s from 07:00 to 19:00, in the agent's 60-s windows."""
    store = Store(tmp_path / "s.sqlite", telemetry_resolution_s=60)
    t = T0 - timedelta(hours=1)
    with store.batch():
        while t < T0 + timedelta(hours=11):
            store.add_telemetry(t, "ev1", {"session_energy_kwh": counter_at(t, cumulative)})
            t += timedelta(seconds=5)
        store.flush()
    return store


@pytest.mark.parametrize("cumulative", [False, True])
def test_two_cars_on_one_charger_are_each_credited_their_own_energy(
    tmp_path: Path, cumulative: bool
) -> None:
    store = charger_store(tmp_path, cumulative)
    a = rd.delivered_kwh(store, CAR_A, CAR_B.arrival, STEP)
    b = rd.delivered_kwh(store, CAR_B, None, STEP)
    assert a == pytest.approx(20.0, abs=0.01)
    # With a counter that keeps counting, the highest reading in B's stay is 35 kWh: B got 15.
    assert b == pytest.approx(15.0, abs=0.01)
    assert max(0.0, CAR_B.energy_needed_kwh - b) == pytest.approx(0.0, abs=0.01)


def test_a_car_that_got_less_than_its_need_shows_it_under_a_cumulative_counter(
    tmp_path: Path,
) -> None:
    """B needs 25 kWh and got 15: 10 kWh unmet, although the counter reads 35 kWh."""
    store = charger_store(tmp_path, cumulative=True)
    hungry = EvSession("ev1", CAR_B.arrival, CAR_B.departure, 25.0, 11.0)
    assert 25.0 - rd.delivered_kwh(store, hungry, None, STEP) == pytest.approx(10.0, abs=0.01)


def test_counter_rules() -> None:
    assert counter_increase_kwh([5.0, 6.0, 8.0]) == pytest.approx(3.0)
    assert counter_increase_kwh([20.0, 0.0, 4.0]) == pytest.approx(4.0)  # reset at plug-in
    assert counter_increase_kwh([20.0, 3.0, 4.0]) == pytest.approx(4.0)  # 3 since the reset
    # A window holding a reset: its min is the value just after it, its max the old total.
    assert session_energy_kwh(20.0, [(0.0, 20.0), (0.5, 1.5), (1.5, 2.5)]) == pytest.approx(2.5)
    assert session_energy_kwh(20.0, [(20.0, 21.0), (21.0, 22.5)]) == pytest.approx(2.5)
    assert session_energy_kwh(None, []) == 0.0


def view(plugged: bool, counter: float) -> DeviceView:
    return DeviceView(
        "ev1",
        True,
        {"plugged": 1.0 if plugged else 0.0, "session_energy_kwh": counter, "power_kw": 0.0},
    )


@pytest.mark.parametrize("cumulative", [False, True])
def test_agent_counts_a_second_cars_energy_from_its_plug_in(cumulative: bool) -> None:
    """The agent's need estimate for car B: its 20 kWh default need less only what B got."""
    device = load_site(OFFICE).device("ev1")
    flex = EvFlex(device)
    need_default = device.config.ev.energy_needed_kwh if device.config.ev else 20.0
    t = T0
    for h, plugged in ((0.0, True), (2.0, True), (4.5, False), (5.0, True), (5.5, True)):
        t = T0 + timedelta(hours=h)
        need, _ = flex.session_estimate(view(plugged, counter_at(t, cumulative)), t)
        if h == 2.0:
            assert need == pytest.approx(max(0.0, need_default - 20.0))
    assert flex.received_kwh == pytest.approx(5.0)  # B: 10 kW for the half hour since 13:00
    assert need == pytest.approx(need_default - 5.0)


def test_agent_started_with_a_car_plugged_trusts_the_counter_as_configured() -> None:
    """No reading before the plug-in: a per-session counter is the car's own energy; a
    cumulative one tells nothing about it (the car is assumed to have had nothing)."""
    site = load_site(OFFICE)
    per_session = EvFlex(site.device("ev1"))
    per_session.session_estimate(view(True, 7.0), T0)
    assert per_session.received_kwh == pytest.approx(7.0)

    dev = site.device("ev1")
    assert dev.config.ev is not None
    cfg = dev.config.model_copy(
        update={"ev": dev.config.ev.model_copy(update={"session_counter": "cumulative"})}
    )
    cumulative = EvFlex(dev.model_copy(update={"config": cfg}))
    cumulative.session_estimate(view(True, 700.0), T0)
    cumulative.session_estimate(view(True, 702.0), T0 + timedelta(minutes=10))
    assert cumulative.received_kwh == pytest.approx(2.0)
