"""The perfect-foresight oracle on buildings small enough to work out by hand: a flat base
load and one battery (its power limit binds, or its energy above the reserve does), a
sheddable load, and whether a cap can be held over several intervals at once."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from optimiser import SolverOptions
from vpp.replay.generate import BuildingSpec, Load, draw, scenario_data, site_data
from vpp.replay.oracle import FEASIBLE_TOL_KW, FRACTION_TOL, Oracle
from vpp.replay.scenario import Scenario, load_scenario

FLAT = [0.5] * 24
PEAK = 200.0  # so the base load is 100 kW all day


def _spec(**kw: object) -> BuildingSpec:
    spec = BuildingSpec(
        site_id="flat-1",
        kind="office",
        timezone=draw(1).spec.timezone,  # the day borrowed from seed 1 starts there
        base_peak_kw=PEAK,
        shape=FLAT,
        zones=[],
        battery_kw=0.0,
        battery_kwh=0.0,
        battery_soc_pct=50.0,
        chargers=[],
        pv_kw=0.0,
        loads=[],
    )
    return replace(spec, **kw)  # type: ignore[arg-type]


def _scenario(tmp: Path, spec: BuildingSpec) -> Scenario:
    gen = replace(draw(1), spec=spec, events=[], faults=[])
    gen = replace(gen, duration=timedelta(hours=2))
    (tmp / "site.yaml").write_text(yaml.safe_dump(site_data(spec), sort_keys=False))
    data = scenario_data(gen, "site.yaml")
    (tmp / "scenario.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return load_scenario(tmp / "scenario.yaml")


def _interval(sc: Scenario, k: int) -> tuple[datetime, datetime]:
    start = sc.start + timedelta(minutes=15 * k)
    return start, start + timedelta(minutes=15)


def test_a_battery_gives_its_rating_when_its_energy_allows(tmp_path: Path) -> None:
    sc = _scenario(tmp_path, _spec(battery_kw=50.0, battery_kwh=200.0))
    oracle = Oracle(sc)
    for k in (0, 4, 7):
        a, b = _interval(sc, k)
        assert oracle.min_import_kw(a, b) == pytest.approx(100.0 - 50.0, abs=0.05)


def test_a_small_battery_gives_only_its_energy_above_the_reserve(tmp_path: Path) -> None:
    # 10 kWh at 50 %, reserve 20 %: 3 kWh, 2.85 kWh on the AC side (discharge efficiency
    # 0.95), spread over the first 15-min interval: 11.4 kW.
    sc = _scenario(tmp_path, _spec(battery_kw=50.0, battery_kwh=10.0))
    oracle = Oracle(sc)
    a, b = _interval(sc, 0)
    assert oracle.min_import_kw(a, b) == pytest.approx(100.0 - 11.4, abs=0.05)
    # 45 min later it can first charge to its 95 % at 50 kW: 7.5 kWh above the reserve,
    # 7.125 kWh on the AC side, 28.5 kW over the interval.
    a, b = _interval(sc, 3)
    assert oracle.min_import_kw(a, b) == pytest.approx(100.0 - 28.5, abs=0.05)


def test_a_sheddable_load_is_shed_for_the_interval_asked(tmp_path: Path) -> None:
    load = Load("fans", 20.0, 1.0, 60, 30, dr_only=True)
    sc = _scenario(tmp_path, _spec(loads=[load]))
    a, b = _interval(sc, 2)
    oracle = Oracle(sc)
    assert oracle.min_import_kw(a, b) == pytest.approx(100.0, abs=0.05)
    # Without the event the load runs: the plan for the tariff imports base + load.
    assert oracle.planned_import_kw()[2] == pytest.approx(120.0, abs=0.05)


def test_full_request_knows_when_the_energy_runs_out(tmp_path: Path) -> None:
    # 30 kWh at 50 %, reserve 20 %: 9 kWh × 0.95 = 8.55 kWh on the AC side. Holding 20 kW
    # off for the first hour takes 20 kWh: no; for one step, 5 kWh: yes; 5 kW for the hour:
    # yes (from the start: no charging before).
    sc = _scenario(tmp_path, _spec(battery_kw=50.0, battery_kwh=30.0))
    oracle = Oracle(sc)
    hour = [(a, b, 80.0) for a, b in (_interval(sc, k) for k in range(4))]
    assert oracle.full_request(hour) is False
    assert oracle.full_request(hour[:1]) is True
    assert oracle.full_request([(a, b, 95.0) for a, b, _ in hour]) is True
    # Of 20 kW asked for that hour, 8.55 kWh hold 42.75 % in every interval.
    asks = [(a, b, 100.0, 20.0) for a, b, _ in hour]
    assert oracle.event_fraction(asks) == pytest.approx(8.55 / 20.0, abs=0.01)
    assert oracle.event_fraction([(a, b, 100.0, 5.0) for a, b, _ in hour]) == 1.0


def test_a_sheddable_load_is_shed_whole_or_not_at_all(tmp_path: Path) -> None:
    # 20 kW, shed at most 60 min in any 2 h (60 min rest): over the 2-hour run the LP
    # could shed half of it throughout (10 kW in each of the 8 intervals), but the load is
    # on or off: at most 4 intervals get its 20 kW, the others nothing.
    load = Load("fans", 20.0, 1.0, 60, 60, dr_only=True)
    sc = _scenario(tmp_path, _spec(loads=[load]))
    oracle = Oracle(sc)
    run = [_interval(sc, k) for k in range(8)]
    base = 100.0 + 20.0
    assert oracle.full_request([(a, b, base - 10.0) for a, b in run]) is False
    assert oracle.full_request([(a, b, base - 20.0) for a, b in run[:4]]) is True
    assert oracle.full_request([(a, b, base - 20.0) for a, b in run[:5]]) is False
    # No share of a request in all 8 intervals can be held at once (beyond the cap's
    # tolerance, 0.5 kW of 20).
    none = (FEASIBLE_TOL_KW + 0.01) / 20.0 + FRACTION_TOL
    assert oracle.event_fraction([(a, b, base, 20.0) for a, b in run]) == pytest.approx(
        0.0, abs=none
    )
    assert oracle.relaxed == []
    # The relaxation (a fraction of the load in a step) would claim half.
    oracle.on_off = frozenset()
    assert oracle.event_fraction([(a, b, base, 20.0) for a, b in run]) == pytest.approx(
        0.5, abs=0.01
    )


def test_a_shed_load_rests_before_it_is_shed_again(tmp_path: Path) -> None:
    # Shed at most 30 min, then run at least 30 min: every other interval would keep the
    # energy rule of each hour (30 min shed in any hour) but rests only 15 min between.
    load = Load("fans", 20.0, 1.0, 30, 30, dr_only=True)
    sc = _scenario(tmp_path, _spec(loads=[load]))
    oracle = Oracle(sc)
    cut = 100.0  # the base load alone: the load shed whole
    assert oracle.full_request([(*_interval(sc, k), cut) for k in (0, 2, 4, 6)]) is False
    assert oracle.full_request([(*_interval(sc, k), cut) for k in (0, 3, 6)]) is True
    assert oracle.full_request([(*_interval(sc, k), cut) for k in (0, 1, 4, 5)]) is True
    assert oracle.full_request([(*_interval(sc, k), cut) for k in (0, 1, 2)]) is False


def test_a_mip_stopped_short_answers_with_its_relaxation(tmp_path: Path) -> None:
    # HiGHS stopped before its first node: no optimum, so the LP (loads shed in fractions)
    # answers, an upper bound of the all-or-nothing figure, and the oracle says so.
    loads = [Load("fans", 20.0, 1.0, 60, 60), Load("pumps", 15.0, 1.0, 60, 60)]
    loads.append(Load("lights", 12.0, 1.0, 30, 30))
    sc = _scenario(tmp_path, _spec(loads=loads))
    asks = [(*_interval(sc, k), 147.0, 30.0) for k in range(8)]
    exact = Oracle(sc)
    whole = exact.event_fraction(asks)
    exact.on_off = frozenset()
    relaxation = exact.event_fraction(asks)
    assert relaxation > whole + 0.05
    stopped = Oracle(sc, SolverOptions(highs={"mip_max_nodes": 0}))
    assert stopped.event_fraction(asks) == pytest.approx(relaxation, abs=FRACTION_TOL)
    assert stopped.relaxed and all(r.startswith("relaxed") for r in stopped.relaxed)
