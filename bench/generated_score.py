"""The score on generated buildings (issue 12 point 7): `SCENARIOS` days drawn by
vpp.replay.generate (seeds 1..SCENARIOS, each cut to its first event), replayed through the
real agent (simulated devices over Modbus and MQTT, Mosquitto, the virtual clock, the
counterfactual in a second process) and judged against the perfect-foresight oracle.

Per interval: delivered ≥ 95 % of min(request, oracle) (`feasible_ratio`, see
vpp.replay.feasible), and the oracle honest (in a run that kept comfort and EV needs, as the
oracle does: delivered ≤ oracle_kw + 2 % of the request; more would mean it is wrong);
per run: comfort 0 degC·h, unmet EV 0 kWh; per event: |reported − measured| delivered ratio
≤ 0.10 (10 % of the request). Over the set: the oracle holds the full request in ≥ 80 % of
the events (the generator's depths leave most events feasible).

Not in `make test` yet: it fails today (issue 12 stays open; docs/performance.md, "Delivery
on generated buildings", names each failing seed and cause). Run it by hand (`-s` prints each
replay's wall and CPU seconds; `VPP_SCORE_SCENARIOS=N` sets the number of seeds, 30 by
default as the issue's acceptance wants, about 30 s of CPU each):
`PYTHONPATH=. .venv/bin/python -m pytest -s --import-mode=importlib -p tests.conftest
bench/generated_score.py` (importlib: bench/optimiser.py would shadow the package)."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Broker
from vpp.replay.generate import draw, scenario_data, site_data
from vpp.replay.runner import COUNTERFACTUAL, STORE, replay
from vpp.replay.scenario import load_scenario
from vpp.replay.summary import event_reports

SCENARIOS = int(os.environ.get("VPP_SCORE_SCENARIOS", "30"))
"""Seeds 1..SCENARIOS (a replay and its counterfactual: about 30 s of CPU, 2026-12-03)."""
FEASIBLE_SHARE = 0.8
HONEST_TOL = 0.02
# Filled by each replay, read by the last test (the file runs on one worker, in order).
FULL_REQUEST: dict[tuple[int, str], bool] = {}


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (the counterfactual's)."""
    return sum(
        r.ru_utime + r.ru_stime
        for r in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )


def _scenario(tmp: Path, seed: int) -> Any:
    gen = draw(seed).first_event_only()
    (tmp / "site.yaml").write_text(yaml.safe_dump(site_data(gen.spec), sort_keys=False))
    data = scenario_data(gen, "site.yaml")
    (tmp / "scenario.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return load_scenario(tmp / "scenario.yaml")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", range(1, SCENARIOS + 1))
async def test_a_generated_day_delivers_what_was_possible(
    fresh_mosquitto: Broker, tmp_path: Path, seed: int
) -> None:
    sc = _scenario(tmp_path, seed)
    wall0, cpu0 = time.perf_counter(), _cpu_s()
    s = await replay(sc, tmp_path / "out", strategy="optimiser", broker_url=fresh_mosquitto.url)
    print(
        f"seed {seed}: {sc.duration} simulated in {time.perf_counter() - wall0:.1f} s wall,"
        f" {_cpu_s() - cpu0:.1f} s CPU (this process and its children),"
        f" load {os.getloadavg()[0]:.1f}"
    )
    for ev in s["events"]:
        FULL_REQUEST[(seed, ev["event_id"])] = ev["oracle_full_request"]
        print(f"  {ev['event_id']}: oracle fraction {ev['oracle_fraction']}")
    out = tmp_path / "out"
    reports = event_reports(out / STORE, sc, out / COUNTERFACTUAL / STORE)
    problems = []
    if s["comfort_violation_degC_h"] != 0.0:
        problems.append(f"comfort {s['comfort_violation_degC_h']} degC h")
    if s["unmet_ev_kwh"] != 0.0:
        problems.append(f"unmet EV {s['unmet_ev_kwh']} kWh")
    for ev in s["events"]:
        assert ev["oracle_kw"] is not None, (seed, ev.get("oracle_note"))
        rows = reports[ev["event_id"]].intervals
        for iv, possible, ratio in zip(rows, ev["oracle_kw"], ev["feasible_ratio"], strict=True):
            at = f"{ev['event_id']} {iv.start.astimezone(sc.tz):%H:%M}"
            req, got = iv.requested_kw, iv.delivered_kw
            assert req is not None and got is not None and possible is not None, (seed, at)
            # The oracle keeps comfort and EV needs: a run that broke them is outside it.
            kept = s["comfort_violation_degC_h"] == 0.0 and s["unmet_ev_kwh"] == 0.0
            if kept and got > possible + HONEST_TOL * max(req, 1.0):
                problems.append(f"{at}: delivered {got:.1f} kW > oracle {possible:.1f} kW")
            if ratio is not None and ratio < 0.95:
                problems.append(
                    f"{at}: delivered {got:.1f} of min(request {req:.1f}, oracle {possible:.1f},"
                    f" {ev['oracle_fraction']} × request)"
                )
        gap = abs((ev["reported_delivered_ratio"] or 0.0) - (ev["delivered_ratio"] or 0.0))
        if gap > 0.10:
            problems.append(
                f"{ev['event_id']}: reported {ev['reported_delivered_ratio']}"
                f" against measured {ev['delivered_ratio']}"
            )
    assert not problems, (f"seed {seed}", problems)


def test_most_generated_events_are_feasible() -> None:
    assert len(FULL_REQUEST) >= SCENARIOS, FULL_REQUEST  # every replay above ran
    share = sum(FULL_REQUEST.values()) / len(FULL_REQUEST)
    assert share >= FEASIBLE_SHARE, FULL_REQUEST
