"""Shortened DR scenarios for the end-to-end tests: the bundled summer office day, started at
11:00 local so that a test replays hours rather than a whole day, with the event sent two
hours ahead and vehicles that arrive after the start (so that every one is checked)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from devices.profile import read_yaml
from vpp.replay.scenario import Scenario, ScenarioError, parse_scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "config" / "scenarios"
SUMMER = SCENARIOS / "office-summer-day.yaml"

# Six vehicles arriving 11:10-12:00 and leaving 16:30-18:00, 14-24 kWh each.
VISITS = {
    "ev1": [{"arrival": "PT10M", "departure": "PT5H30M", "energy_needed_kwh": 20}],
    "ev2": [{"arrival": "PT20M", "departure": "PT6H", "energy_needed_kwh": 24}],
    "ev3": [{"arrival": "PT30M", "departure": "PT6H30M", "energy_needed_kwh": 18}],
    "ev4": [{"arrival": "PT40M", "departure": "PT7H", "energy_needed_kwh": 14}],
    "ev7": [{"arrival": "PT50M", "departure": "PT6H45M", "energy_needed_kwh": 22}],
    "ev8": [{"arrival": "PT1H", "departure": "PT6H15M", "energy_needed_kwh": 16}],
}


def afternoon(
    *,
    signal: str = "curtail_kw",
    value: float = 120.0,
    faults: list[dict[str, Any]] | None = None,
    duration: str = "PT7H30M",
    event_id: str = "e2e-1",
) -> Scenario:
    """11:00-18:30 local on the summer day; one event 14:00-16:00 (eight 15-min intervals),
    sent at 12:00 (two hours ahead)."""
    raw = copy.deepcopy(read_yaml(SUMMER, ScenarioError))
    raw.update(
        name=f"office-afternoon-{event_id}",
        start="2026-07-15T11:00:00+08:00",
        duration=duration,
        ev_arrivals={"explicit": VISITS},
        faults=faults or [],
        events=[
            {
                "event_id": event_id,
                "send_at": "PT1H",
                "signal": signal,
                "start": "PT3H",
                "duration": "PT2H",
                "interval": "PT15M",
                "value": value,
                "program": "e2e",
            }
        ],
    )
    return parse_scenario(raw, SUMMER)
