"""The generator (vpp.replay.generate) and `vpp scenario generate`: the same seed gives the
same files; over many seeds the draws cover the issue's space and stay inside it; every
generated pair is a valid site file and scenario."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

from vpp.grid.types import parse_duration
from vpp.measure.series import StepSeries
from vpp.measure.settlement import settlement_baseline
from vpp.replay.generate import CLIMATES, COP, KINDS, SOLAR_GAIN_FACTOR, draw, write
from vpp.replay.history import METER_POINT, generate_history
from vpp.replay.scenario import load_scenario
from vpp.store.store import Store

SEEDS = range(200)


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    a = write(17, tmp_path / "a")
    b = write(17, tmp_path / "b")
    for x, y in zip(a, b, strict=True):
        assert x.read_bytes() == y.read_bytes()
    assert write(18, tmp_path / "c")[0].read_bytes() != a[0].read_bytes()


def test_draws_cover_the_space_and_stay_inside_it() -> None:
    kinds: Counter[str] = Counter()
    zones, chargers, loads, events, zones_tz = set(), set(), set(), Counter(), set()
    signals: Counter[str] = Counter()
    batteries = pv = faults = dr_only = all_loads = 0
    for seed in SEEDS:
        gen = draw(seed)
        s = gen.spec
        kinds[s.kind] += 1
        zones.add(len(s.zones))
        chargers.add(len(s.chargers))
        loads.add(len(s.loads))
        zones_tz.add(s.timezone)
        batteries += s.battery_kw > 0
        pv += s.pv_kw > 0
        faults += bool(gen.faults)
        dr_only += sum(ld.dr_only for ld in s.loads)
        all_loads += len(s.loads)
        events[len(gen.events)] += 1
        assert {c.profile for c in s.chargers} <= {"ev-charger-modbus", "ev-charger-mqtt"}
        peak = s.expected_peak_kw()
        for e in gen.events:
            signals[e["signal"]] += 1
            minutes = parse_duration(e["duration"]).total_seconds() / 60
            assert 30 <= minutes <= 240, (seed, e)
            if e["signal"] == "curtail_kw":
                assert 0 < e["value"] <= 0.4 * peak + 0.5, (seed, e, peak)
        assert gen.duration.total_seconds() > 0
    assert set(kinds) == set(KINDS)
    assert min(zones) == 2 and max(zones) == 8
    assert min(chargers) == 0 and max(chargers) == 16
    assert min(loads) == 0 and max(loads) == 5
    assert zones_tz == set(CLIMATES)
    assert set(events) == {1, 2, 3}
    assert set(signals) == {"curtail_kw", "import_cap_kw"}
    assert 0 < batteries < len(SEEDS) and 0 < pv < len(SEEDS) and 0 < faults < len(SEEDS) / 3
    assert dr_only > 0.7 * all_loads


def test_every_zone_can_hold_its_band_on_the_hottest_hour() -> None:
    # At full power, against the day's hottest air and the peak sun (900 W/m2 in the built-in
    # weather, 5 kW per 1000 W/m2), a zone settles where its chiller's heat balances what comes
    # in: below the top of its band, or it breaks comfort with no event (seeds 5 and 8 did).
    for seed in SEEDS:
        s = draw(seed).spec
        for i, z in enumerate(s.zones):
            gains = z.gain_kw + 0.9 * SOLAR_GAIN_FACTOR
            settles_c = s.outdoor_max_c - z.r_k_per_kw * (COP * z.max_kw - gains)
            assert settles_c <= z.max_c - 0.5, (seed, i, z, s.outdoor_max_c)


def test_every_generated_pair_loads(tmp_path: Path) -> None:
    for seed in range(0, 200, 25):
        _, scenario = write(seed, tmp_path / str(seed))
        sc = load_scenario(scenario)
        assert sc.final_events(), seed
        assert sc.start < sc.final_events()[0].start < sc.end


def test_the_cli_writes_both_files_and_names_a_bad_option(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "vpp", "scenario", "generate", "--seed", "5"]
    ok = subprocess.run([*cmd, "--out", str(tmp_path)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    site, scenario = tmp_path / "gen-5.yaml", tmp_path / "gen-5-scenario.yaml"
    assert f"site: {site}" in ok.stdout and f"scenario: {scenario}" in ok.stdout
    assert load_scenario(scenario).site.id == "gen-5"
    bad = subprocess.run(
        [*cmd, "--out", str(tmp_path), "--strategy", "best"], capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "--strategy" in bad.stderr


def test_generated_history_holds_the_settlement_like_days(tmp_path: Path) -> None:
    """Each generated day has the history its site's settlement needs: over it the default
    10-of-10 finds its ten like days in the site's holiday calendar (US: Independence Day
    observed on 3 July; FR: Bastille Day, 14 July) and falls back to nothing."""
    by_zone: dict[str, int] = {}
    for seed in SEEDS:
        gen = draw(seed).first_event_only()
        by_zone.setdefault(gen.spec.timezone, seed)
    assert {"America/New_York", "Europe/Paris", "Asia/Shanghai"} <= set(by_zone)
    for tz, seed in sorted(by_zone.items()):
        _, path = write(seed, tmp_path / str(seed), first_event_only=True)
        sc = load_scenario(path)
        store = Store(tmp_path / f"{seed}.sqlite")
        generate_history(store, sc)  # the devices on their own: cheap, the same days
        ev = sc.final_events()[0]
        meter = StepSeries(
            store.telemetry("meter", METER_POINT, sc.start - timedelta(days=46), sc.start),
            max_hold=timedelta(minutes=1),
        )
        cfg = sc.site.config.settlement
        # The event taken at the run's start: the run's own minutes are not metered here
        # (the like days, the same either way, are what is checked).
        b = settlement_baseline(
            meter,
            cfg.program(ev.program),
            tz=sc.tz,
            event_start=sc.start,
            event_end=sc.start + (ev.end - ev.start),
            calendar=cfg.calendar(sc.site.config.timezone),
        )
        assert b.method.startswith("x_of_y:10/10"), (tz, seed, b.method, b.reason)
        assert len(b.days_used) == 10 and b.fallbacks == () and b.reason is None, (tz, b)
        assert sc.config.history_days <= 16, (tz, sc.config.history_days)
