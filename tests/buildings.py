"""Buildings that nobody tuned for: a site file and a shortened DR scenario written by a small
function from a few parameters (zones with their own comfort bands, a battery, chargers, PV,
sheddable load groups with a price), using only the bundled device profiles.

`building(spec)` is the site file's data; `afternoon(tmp, spec, events)` the scenario that
replays it from `spec.start_h` local, with the events given relative to that start. A seed
picks every number (`spec_from_seed`), so a generator of many buildings is a loop over seeds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from vpp.replay.scenario import Scenario, load_scenario

# A hotel's day: guests out mid-morning, busy evening (fractions of the peak, by local hour).
HOTEL_DAY = [
    0.45, 0.4, 0.4, 0.4, 0.45, 0.55, 0.7, 0.8, 0.75, 0.65, 0.6, 0.6,
    0.65, 0.65, 0.7, 0.75, 0.85, 0.95, 1.0, 1.0, 0.95, 0.85, 0.7, 0.55,
]  # fmt: skip
# An office's day (the simulators' default shape), for the other kind of building.
OFFICE_DAY = [
    0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.35, 0.5, 0.8, 0.95, 1.0, 1.0,
    0.95, 1.0, 1.0, 1.0, 0.95, 0.85, 0.6, 0.45, 0.4, 0.35, 0.3, 0.3,
]  # fmt: skip


@dataclass(frozen=True)
class Zone:
    """An HVAC zone: comfort band (degC), chiller rating (kW electric), RC, gains (kW)."""

    min_c: float
    max_c: float
    max_kw: float
    r_k_per_kw: float
    c_kwh_per_k: float
    gain_kw: float


@dataclass(frozen=True)
class Load:
    """A sheddable load group and its price and limits as a site file gives them."""

    id: str
    power_kw: float
    shed_cost_per_kwh: float
    max_shed_min: float
    min_rest_min: float
    dr_only: bool = True


@dataclass(frozen=True)
class Spec:
    """Everything that makes one generated building."""

    site_id: str
    timezone: str
    base_peak_kw: float
    shape: list[float]
    zones: list[Zone]
    battery_kw: float
    battery_kwh: float
    battery_soc_pct: float
    chargers: int
    charger_kw: float
    pv_kw: float
    loads: list[Load]
    outdoor_min_c: float = 27.0
    outdoor_max_c: float = 36.0
    date: str = "2026-07-15"
    start_h: int = 14
    rebound_cap_kw: float | None = None
    seed: int = 1


def hotel() -> Spec:
    """The hotel of issue 12: 5 zones with different bands, 100 kW / 200 kWh, 12 chargers,
    120 kW PV, 4 sheddable load groups, America/New_York, a hot day."""
    bands = [(21.0, 24.0), (22.0, 25.0), (22.0, 26.0), (23.0, 26.0), (21.0, 25.0)]
    zones = [
        Zone(lo, hi, 40.0 + 5 * i, 0.5, 25.0 + 5 * i, 20.0 + 3 * i)
        for i, (lo, hi) in enumerate(bands)
    ]
    loads = [
        Load("laundry", 30.0, 0.8, 120, 60),
        Load("pool-pumps", 15.0, 0.3, 180, 30),
        Load("lighting", 20.0, 2.0, 90, 60),
        Load("hot-water", 25.0, 0.5, 120, 60),
    ]
    return Spec(
        site_id="hotel-1",
        timezone="America/New_York",
        base_peak_kw=180.0,
        shape=HOTEL_DAY,
        zones=zones,
        battery_kw=100.0,
        battery_kwh=200.0,
        battery_soc_pct=70.0,
        chargers=12,
        charger_kw=11.0,
        pv_kw=120.0,
        loads=loads,
        outdoor_min_c=27.0,
        outdoor_max_c=37.0,
        rebound_cap_kw=None,
        seed=12,
    )


def spec_from_seed(seed: int) -> Spec:
    """A building drawn from `seed`: a hotel or an office, 3-6 zones with their own bands,
    a battery of 0.5-2 h, 2-12 chargers, PV, 2-5 load groups with their prices."""
    rng = random.Random(seed)
    is_hotel = rng.random() < 0.5
    zones = []
    for _ in range(rng.randint(3, 6)):
        lo = rng.choice([20.0, 21.0, 22.0, 23.0])
        zones.append(
            Zone(
                lo,
                lo + rng.choice([3.0, 3.5, 4.0]),
                rng.choice([25.0, 30.0, 40.0, 50.0]),
                rng.uniform(0.3, 0.8),
                rng.uniform(20.0, 45.0),
                rng.uniform(12.0, 30.0),
            )
        )
    names = ["laundry", "pool-pumps", "lighting", "hot-water", "fans"]
    loads = [
        Load(
            n,
            rng.choice([10.0, 15.0, 20.0, 30.0]),
            rng.choice([0.3, 0.8, 1.5, 3.0]),
            rng.choice([60, 90, 120, 180]),
            rng.choice([30, 60]),
        )
        for n in rng.sample(names, rng.randint(2, 5))
    ]
    kw = rng.choice([50.0, 100.0, 150.0])
    return Spec(
        site_id=f"gen-{seed}",
        timezone=rng.choice(["America/New_York", "Europe/Paris", "Asia/Shanghai"]),
        base_peak_kw=rng.uniform(120.0, 300.0),
        shape=HOTEL_DAY if is_hotel else OFFICE_DAY,
        zones=zones,
        battery_kw=kw,
        battery_kwh=kw * rng.choice([1.0, 2.0]),
        battery_soc_pct=rng.uniform(50.0, 90.0),
        chargers=rng.randint(2, 12),
        charger_kw=rng.choice([7.0, 11.0, 22.0]),
        pv_kw=rng.choice([0.0, 50.0, 120.0]),
        loads=loads,
        outdoor_min_c=rng.uniform(25.0, 29.0),
        outdoor_max_c=rng.uniform(33.0, 38.0),
        seed=seed,
    )


def building(spec: Spec) -> dict[str, Any]:
    """The site file's data for `spec` (ports from the OS: `port: 0`)."""
    devices: list[dict[str, Any]] = [
        {"id": "meter", "type": "meter", "profile": "site-meter", "port": 0, "sim": {}}
    ]
    if spec.battery_kw > 0:
        devices.append(
            {
                "id": "bat1",
                "type": "battery",
                "profile": "sunspec-battery",
                "port": 0,
                "limits": {"power_setpoint_kw": [-spec.battery_kw, spec.battery_kw]},
                "soc_reserve_pct": 20,
                "priority": 10,
                "sim": {
                    "default_watchdog_s": 180,
                    "capacity_kwh": spec.battery_kwh,
                    "max_charge_kw": spec.battery_kw,
                    "max_discharge_kw": spec.battery_kw,
                    "initial_soc_pct": spec.battery_soc_pct,
                    "soc_min_pct": 5,
                    "soc_max_pct": 95,
                    "soc_reserve_pct": 20,
                },
            }
        )
    if spec.pv_kw > 0:
        devices.append(
            {
                "id": "pv1",
                "type": "pv",
                "profile": "pv-inverter",
                "poll_s": 60,
                "port": 0,
                "sim": {"rated_kw": spec.pv_kw},
            }
        )
    for i, z in enumerate(spec.zones):
        mid = round((z.min_c + z.max_c) / 2, 1)
        devices.append(
            {
                "id": f"zone-{i + 1}",
                "type": "hvac",
                "profile": "hvac-zone",
                "poll_s": 60,
                "port": 0,
                "limits": {"setpoint_c": [18, 30], "power_limit_kw": [0, 2 * z.max_kw]},
                "comfort": {"min_c": z.min_c, "max_c": z.max_c},
                "priority": 40,
                "sim": {
                    "default_watchdog_s": 180,
                    "r_k_per_kw": z.r_k_per_kw,
                    "c_kwh_per_k": z.c_kwh_per_k,
                    "cop": 3.0,
                    "max_power_kw": z.max_kw,
                    "initial_temp_c": mid,
                    "local_setpoint_c": mid,
                    "internal_gains_kw": z.gain_kw,
                    "solar_gain_factor": 5,
                },
            }
        )
    for i in range(spec.chargers):
        devices.append(
            {
                "id": f"ev{i + 1}",
                "type": "ev_charger",
                "profile": "ev-charger-modbus",
                "poll_s": 60,
                "port": 0,
                "limits": {"power_limit_kw": [0, spec.charger_kw]},
                "ev": {"departure_after_h": 6, "energy_needed_kwh": 15},
                "priority": 30,
                "sim": {
                    "default_watchdog_s": 180,
                    "max_power_kw": spec.charger_kw,
                    "default_limit_kw": spec.charger_kw,
                },
            }
        )
    for ld in spec.loads:
        devices.append(
            {
                "id": ld.id,
                "type": "curtailable_load",
                "profile": "curtailable-load",
                "poll_s": 60,
                "port": 0,
                "priority": 20,
                "shed_cost_per_kwh": ld.shed_cost_per_kwh,
                "max_shed_min": ld.max_shed_min,
                "min_rest_min": ld.min_rest_min,
                "dr_only": ld.dr_only,
                "sim": {"default_watchdog_s": 180, "power_kw": ld.power_kw},
            }
        )
    limits: dict[str, Any] = {
        "import_kw": 2 * spec.base_peak_kw + sum(z.max_kw for z in spec.zones) + 100,
        "export_kw": 0,
        "recovery_ramp_kw_per_min": 20,
    }
    if spec.rebound_cap_kw is not None:
        limits["rebound_cap_kw"] = spec.rebound_cap_kw
    return {
        "site_id": spec.site_id,
        "name": f"generated building {spec.site_id}",
        "timezone": spec.timezone,
        "grid": {"extensions": True},
        "periods": {"poll_s": 5, "telemetry_s": 5, "plan_s": 900, "control_s": 5},
        "store": {"telemetry_resolution_s": 60},
        "limits": limits,
        "sim": {
            "step_s": 5,
            "seed": spec.seed,
            "base_load": {"peak_kw": spec.base_peak_kw, "noise_kw": 2, "shape": spec.shape},
            "environment": {
                "outdoor_min_c": spec.outdoor_min_c,
                "outdoor_max_c": spec.outdoor_max_c,
            },
        },
        "devices": devices,
    }


def _visits(spec: Spec, hours: float) -> dict[str, list[dict[str, Any]]]:
    """Cars plugged in during the first half hour, leaving after the replay ends (so every
    need counts), each wanting what a few hours at a fraction of the charger's rating give."""
    rng = random.Random(spec.seed * 7 + 1)
    out = {}
    for i in range(spec.chargers):
        arrive = 5 + 2 * i
        stay_min = int(hours * 60) + rng.randint(30, 120)
        energy = round(rng.uniform(0.15, 0.35) * spec.charger_kw * hours, 1)
        out[f"ev{i + 1}"] = [
            {
                "arrival": f"PT{arrive}M",
                "departure": f"PT{arrive + stay_min}M",
                "energy_needed_kwh": energy,
                "vehicle_max_kw": spec.charger_kw,
            }
        ]
    return out


def afternoon(
    tmp: Path,
    spec: Spec,
    events: list[dict[str, Any]],
    *,
    hours: float = 5.0,
    faults: list[dict[str, Any]] | None = None,
    strategy: str = "optimiser",
) -> Scenario:
    """`hours` of `spec`'s hot day from `spec.start_h` local; `events` as in a scenario
    file (times relative to the start)."""
    site_file = tmp / f"{spec.site_id}.yaml"
    site_file.write_text(yaml.safe_dump(building(spec), sort_keys=False))
    start = datetime.fromisoformat(f"{spec.date}T{spec.start_h:02d}:00:00").replace(
        tzinfo=ZoneInfo(spec.timezone)
    )
    minutes = int(hours * 60)
    data = {
        "name": f"{spec.site_id}-afternoon",
        "site": str(site_file),
        "timezone": spec.timezone,
        "start": start.isoformat(),
        "duration": f"PT{minutes}M",
        "seed": spec.seed,
        "strategy": strategy,
        "history_days": 2,
        "weather": {"outdoor_min_c": spec.outdoor_min_c, "outdoor_max_c": spec.outdoor_max_c},
        "base_load": {"peak_kw": spec.base_peak_kw, "noise_kw": 2, "shape": spec.shape},
        "ev_arrivals": {"explicit": _visits(spec, hours)},
        "events": events,
        "faults": faults or [],
    }
    path = tmp / f"{spec.site_id}-scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_scenario(path)
