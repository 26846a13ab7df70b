"""Buildings and DR days nobody tuned for, drawn from a seed (issue 12 point 7).

`draw(seed)` picks a `Generated` day: a building (`BuildingSpec`: office, hotel, mall,
hospital or school, each with its day shape; 2-8 HVAC zones with their own comfort bands;
a battery or none; 0-16 chargers of mixed kinds (Modbus and MQTT, 7-22 kW); PV or none; 0-5
sheddable loads with a price and limits, mostly `dr_only`; a time zone and its climate as the
built-in weather) and its events (`curtail_kw` or `import_cap_kw`, 15 min to 1 day of
notice, 30 min to 4 h long, 5-40 % of the expected peak deep (less for events longer than
an hour, and never more than 40 % of the import expected then), 1-3 a day, sometimes the
battery lost during one). Only the bundled device profiles are used.

`site_data(spec)` is the site file's data, `scenario_data(gen, site_file)` the scenario's:
shortened to the events' afternoon (from at most 1 h before the first to 30 min after the
last; an event announced earlier than the run's start is sent at its first minute).
`write(seed, out)` writes both (`vpp scenario generate`). The same seed always gives the
same bytes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from vpp.grid.types import format_duration
from vpp.measure.programs import SettlementConfig
from vpp.measure.settlement import history_days_needed

# Day shapes: fractions of the peak base load by local hour.
DAY_SHAPES: dict[str, list[float]] = {
    "office": [
        0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.35, 0.5, 0.8, 0.95, 1.0, 1.0,
        0.95, 1.0, 1.0, 1.0, 0.95, 0.85, 0.6, 0.45, 0.4, 0.35, 0.3, 0.3,
    ],
    "hotel": [
        0.45, 0.4, 0.4, 0.4, 0.45, 0.55, 0.7, 0.8, 0.75, 0.65, 0.6, 0.6,
        0.65, 0.65, 0.7, 0.75, 0.85, 0.95, 1.0, 1.0, 0.95, 0.85, 0.7, 0.55,
    ],
    "mall": [
        0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.3, 0.35, 0.5, 0.75, 0.9, 0.95,
        1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.95, 0.9, 0.8, 0.5, 0.3, 0.25,
    ],
    "hospital": [
        0.7, 0.68, 0.66, 0.66, 0.68, 0.72, 0.8, 0.9, 0.95, 1.0, 1.0, 1.0,
        1.0, 1.0, 1.0, 0.98, 0.95, 0.9, 0.88, 0.85, 0.8, 0.78, 0.75, 0.72,
    ],
    "school": [
        0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.3, 0.7, 0.95, 1.0, 1.0, 1.0,
        0.9, 0.95, 0.9, 0.7, 0.45, 0.3, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2,
    ],
}  # fmt: skip
KINDS = tuple(DAY_SHAPES)

# Time zones with a summer climate each (daily outdoor min and max, degC).
CLIMATES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "America/New_York": ((22.0, 27.0), (30.0, 36.0)),
    "America/Phoenix": ((27.0, 31.0), (38.0, 44.0)),
    "Europe/Paris": ((16.0, 21.0), (27.0, 35.0)),
    "Europe/Madrid": ((19.0, 24.0), (32.0, 39.0)),
    "Asia/Shanghai": ((26.0, 29.0), (33.0, 38.0)),
    "Asia/Singapore": ((25.0, 27.0), (31.0, 33.0)),
    "Asia/Dubai": ((29.0, 32.0), (39.0, 45.0)),
}
DATE = "2026-07-15"
NOTICES_MIN = (15, 30, 60, 120, 240, 12 * 60, 24 * 60)
DURATIONS_MIN = (30, 60, 90, 120, 180, 240)
DEPTH = (0.05, 0.40)
"""An event's depth: a fraction of the expected peak (reduction, or cut below the baseline
for a cap)."""
DEPTH_OF_IMPORT = 0.4
"""At most this share of the import expected during the event (less half the battery's
rating, which the counterfactual may spend on the tariff then) is asked for."""
LEAD_MIN = (30, 60)
"""The run starts this long before the first event (at least, at most): the agent polls and
plans first, and a long notice leaves it time to prepare within the run."""
TAIL_MIN = 30
MAX_HISTORY_DAYS = 45
"""The most history days a scenario file takes."""
WATCHDOG_S = 180
COP = 3.0
SOLAR_GAIN_FACTOR = 5.0
"""A zone's solar gain at 1000 W/m2 (kW), as site_data gives the simulator."""
SIZING_MARGIN = 1.2
"""A zone's chiller holds its band's middle against the day's hottest hour with this margin
(a building's HVAC is sized for its design day: one that cannot hold its band at full power
breaks comfort with or without an event, outside any controller's reach)."""


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
class Charger:
    """An EV charger: its rating (kW) and its profile (Modbus or MQTT)."""

    id: str
    kw: float
    profile: str = "ev-charger-modbus"


@dataclass(frozen=True)
class BuildingSpec:
    """Everything that makes one generated building."""

    site_id: str
    kind: str
    timezone: str
    base_peak_kw: float
    shape: list[float]
    zones: list[Zone]
    battery_kw: float
    battery_kwh: float
    battery_soc_pct: float
    chargers: list[Charger]
    pv_kw: float
    loads: list[Load]
    outdoor_min_c: float = 27.0
    outdoor_max_c: float = 36.0
    date: str = DATE
    rebound_cap_kw: float | None = None
    seed: int = 1

    def expected_peak_kw(self) -> float:
        """A rough peak of the site's import (kW): base load, half the chillers' ratings,
        the loads and a third of the chargers' ratings (what sizes an event's depth)."""
        return (
            self.base_peak_kw
            + 0.5 * sum(z.max_kw for z in self.zones)
            + sum(ld.power_kw for ld in self.loads)
            + sum(c.kw for c in self.chargers) / 3
        )

    def expected_import_kw(self, hour: float) -> float:
        """A cautious import at local `hour` (the base load's shape, some of the chillers and
        chargers, the loads) less what the PV makes then (a clear day's arc, 6:00-18:00)."""
        base = self.base_peak_kw * self.shape[int(hour) % 24]
        sun = max(0.0, math.sin(math.pi * (hour - 6.0) / 12.0))
        # Zones coast within their bands and cars finish: a quarter of the chillers and a
        # sixth of the chargers, not the peak's shares.
        rest = (
            0.25 * sum(z.max_kw for z in self.zones)
            + sum(ld.power_kw for ld in self.loads)
            + sum(c.kw for c in self.chargers) / 6
        )
        return max(0.0, base + rest - self.pv_kw * sun)


@dataclass(frozen=True)
class Generated:
    """A generated building and its DR day: events and faults in scenario-file form (times
    as offsets from the run's `start_local`), and the run's length."""

    spec: BuildingSpec
    start_local: datetime
    duration: timedelta
    events: list[dict[str, Any]]
    faults: list[dict[str, Any]] = field(default_factory=list)

    def first_event_only(self) -> Generated:
        """The same day cut to its first event (and `TAIL_MIN` after it): the shortest
        replay that still scores the controller on this building."""
        ev = self.events[0]
        end = _minutes(ev["start"]) + _minutes(ev["duration"]) + TAIL_MIN
        faults = [f for f in self.faults if _minutes(f["from"]) < end]
        return replace(self, duration=timedelta(minutes=end), events=[ev], faults=faults)


def _minutes(offset: str) -> int:
    """`PT<n>M` (as this module writes them) in minutes."""
    return int(offset.removeprefix("PT").removesuffix("M"))


def draw_zone(rng: random.Random, ratings_kw: list[float], gain_kw: tuple[float, float]) -> Zone:
    """A zone: a band 3-4 degC wide from 20-23 degC, a chiller of one of `ratings_kw`, an RC
    of 0.3-0.8 K/kW and 20-45 kWh/K, internal gains drawn from `gain_kw` (kW)."""
    lo = rng.choice([20.0, 21.0, 22.0, 23.0])
    return Zone(
        lo,
        lo + rng.choice([3.0, 3.5, 4.0]),
        rng.choice(ratings_kw),
        rng.uniform(0.3, 0.8),
        rng.uniform(20.0, 45.0),
        rng.uniform(*gain_kw),
    )


def sized(zone: Zone, outdoor_max_c: float) -> Zone:
    """`zone` with its chiller raised (to whole 5 kW) to what holds the middle of its band
    on the day's hottest hour, with `SIZING_MARGIN` (heat through the envelope, internal
    and peak solar gains; kW electric at `COP`)."""
    mid = (zone.min_c + zone.max_c) / 2
    load_kw = (outdoor_max_c - mid) / zone.r_k_per_kw + zone.gain_kw + SOLAR_GAIN_FACTOR
    need = SIZING_MARGIN * max(0.0, load_kw) / COP
    return zone if zone.max_kw >= need else replace(zone, max_kw=5.0 * math.ceil(need / 5.0))


def draw_building(seed: int) -> BuildingSpec:
    """The building of `seed` (see the module docstring for the space it is drawn from)."""
    rng = random.Random(seed)
    kind = rng.choice(KINDS)
    tz = rng.choice(sorted(CLIMATES))
    (lo_a, lo_b), (hi_a, hi_b) = CLIMATES[tz]
    ratings = [20.0, 25.0, 30.0, 40.0, 50.0]
    zones = [draw_zone(rng, ratings, (8.0, 25.0)) for _ in range(rng.randint(2, 8))]
    names = ["laundry", "pool-pumps", "lighting", "hot-water", "fans", "fountain", "signage"]
    loads = [
        Load(
            n,
            rng.choice([5.0, 10.0, 15.0, 20.0, 30.0]),
            rng.choice([0.3, 0.8, 1.5, 3.0]),
            rng.choice([60, 90, 120, 180, 240]),
            rng.choice([15, 30, 60]),
            dr_only=rng.random() < 0.85,
        )
        for n in rng.sample(names, rng.randint(0, 5))
    ]
    chargers = [
        Charger(
            f"ev{i + 1}",
            rng.choice([7.0, 11.0, 11.0, 22.0]),
            "ev-charger-mqtt" if rng.random() < 0.25 else "ev-charger-modbus",
        )
        for i in range(rng.randint(0, 16))
    ]
    has_battery = rng.random() < 0.75
    kw = rng.choice([50.0, 100.0, 150.0, 250.0]) if has_battery else 0.0
    spec = BuildingSpec(
        site_id=f"gen-{seed}",
        kind=kind,
        timezone=tz,
        base_peak_kw=round(rng.uniform(100.0, 400.0), 1),
        shape=DAY_SHAPES[kind],
        zones=zones,
        battery_kw=kw,
        battery_kwh=kw * rng.choice([1.0, 2.0, 4.0]),
        battery_soc_pct=round(rng.uniform(50.0, 90.0), 1),
        chargers=chargers,
        pv_kw=rng.choice([0.0, 50.0, 100.0, 200.0]) if rng.random() < 0.7 else 0.0,
        loads=loads,
        outdoor_min_c=round(rng.uniform(lo_a, lo_b), 1),
        outdoor_max_c=round(rng.uniform(hi_a, hi_b), 1),
        seed=seed,
    )
    # Sized once the day's heat is drawn (no draw of its own: the other draws stay as they were).
    return replace(spec, zones=[sized(z, spec.outdoor_max_c) for z in spec.zones])


def _low_import(spec: BuildingSpec, start_min: int, dur_min: int) -> float:
    """The least import expected over an event's window, less half the battery's rating
    (which the counterfactual may spend on the tariff then), kW ≥ 0."""
    low = min(spec.expected_import_kw((start_min + m) / 60) for m in range(0, dur_min, 15))
    return max(0.0, low - spec.battery_kw / 2)


def _draw_events(rng: random.Random, spec: BuildingSpec) -> list[dict[str, Any]]:
    """1-3 events in 11:00-21:00 local, 30 min apart at least; absolute local times."""
    count = rng.choices([1, 2, 3], weights=[6, 3, 1])[0]
    out: list[dict[str, Any]] = []
    t = 11 * 60 + 15 * rng.randint(0, 16)  # minutes after local midnight
    peak = spec.expected_peak_kw()
    for i in range(count):
        dur = rng.choice(DURATIONS_MIN)
        if t + dur > 21 * 60:
            break
        signal = "curtail_kw" if rng.random() < 0.7 else "import_cap_kw"
        # A long event holds less: the depth's draw shrinks with the square root of its
        # length beyond an hour (a battery or a zone's headroom is energy, not power).
        shrink = min(1.0, math.sqrt(60.0 / dur))
        # Never deeper than what the site is expected to import then (less a margin): a
        # request above the baseline itself is out of any controller's reach. A window
        # where even the shallowest event would be (the PV's noon) moves later, as a grid
        # operator's would, while the day allows.
        low = _low_import(spec, t, dur)
        while DEPTH_OF_IMPORT * low < DEPTH[0] * peak * shrink and t + 30 + dur <= 21 * 60:
            t += 30
            low = _low_import(spec, t, dur)
        depth = min(rng.uniform(*DEPTH) * peak * shrink, DEPTH_OF_IMPORT * low)
        hours = [(t + m) / 60 for m in range(0, dur, 15)]
        if signal == "curtail_kw":
            value = max(1, round(depth))
        else:
            high = max(spec.expected_import_kw(h) for h in hours)
            value = round(max(0.0, high - depth))
        out.append(
            {
                "event_id": f"{'curtail' if signal == 'curtail_kw' else 'cap'}-{i + 1}",
                "signal": signal,
                "start_min": t,
                "duration_min": dur,
                "notice_min": rng.choice(NOTICES_MIN),
                "value": value,
            }
        )
        t += dur + 30 + 15 * rng.randint(0, 8)
    return out


def draw(seed: int) -> Generated:
    """The building of `seed` with its events, faults and shortened run."""
    spec = draw_building(seed)
    rng = random.Random(seed * 7919 + 1)
    drawn = _draw_events(rng, spec)
    first = drawn[0]
    lead = min(max(first["notice_min"], LEAD_MIN[0]), LEAD_MIN[1])
    start_min = 15 * math.floor((first["start_min"] - lead) / 15)
    end_min = drawn[-1]["start_min"] + drawn[-1]["duration_min"] + TAIL_MIN
    midnight = datetime.fromisoformat(f"{spec.date}T00:00:00").replace(
        tzinfo=ZoneInfo(spec.timezone)
    )
    start = midnight + timedelta(minutes=start_min)
    events = []
    for e in drawn:
        rel = e["start_min"] - start_min
        send = max(1, rel - e["notice_min"])
        events.append(
            {
                "event_id": e["event_id"],
                "send_at": f"PT{send}M",
                "signal": e["signal"],
                "start": f"PT{rel}M",
                "duration": f"PT{e['duration_min']}M",
                "interval": "PT15M",
                "value": e["value"],
            }
        )
    faults = []
    if spec.battery_kw > 0 and rng.random() < 0.15:
        lost = drawn[0]["start_min"] - start_min + 15 * rng.randint(1, 3)
        faults.append({"device": "bat1", "from": f"PT{lost}M", "offline": True})
    return Generated(spec, start, timedelta(minutes=end_min - start_min), events, faults)


def site_data(spec: BuildingSpec) -> dict[str, Any]:
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
                    "default_watchdog_s": WATCHDOG_S,
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
                    "default_watchdog_s": WATCHDOG_S,
                    "r_k_per_kw": z.r_k_per_kw,
                    "c_kwh_per_k": z.c_kwh_per_k,
                    "cop": COP,
                    "max_power_kw": z.max_kw,
                    "initial_temp_c": mid,
                    "local_setpoint_c": mid,
                    "internal_gains_kw": z.gain_kw,
                    "solar_gain_factor": SOLAR_GAIN_FACTOR,
                },
            }
        )
    for c in spec.chargers:
        dev: dict[str, Any] = {
            "id": c.id,
            "type": "ev_charger",
            "profile": c.profile,
            "poll_s": 60,
            "limits": {"power_limit_kw": [0, c.kw]},
            "ev": {"departure_after_h": 6, "energy_needed_kwh": 15},
            "priority": 30,
            "sim": {
                "default_watchdog_s": WATCHDOG_S,
                "max_power_kw": c.kw,
                "default_limit_kw": c.kw,
            },
        }
        if c.profile == "ev-charger-modbus":
            dev["port"] = 0
        devices.append(dev)
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
                "sim": {"default_watchdog_s": WATCHDOG_S, "power_kw": ld.power_kw},
            }
        )
    limits: dict[str, Any] = {
        "import_kw": round(2 * spec.base_peak_kw + sum(z.max_kw for z in spec.zones) + 100),
        "export_kw": 0,
        "recovery_ramp_kw_per_min": 20,
    }
    if spec.rebound_cap_kw is not None:
        limits["rebound_cap_kw"] = spec.rebound_cap_kw
    return {
        "site_id": spec.site_id,
        "name": f"generated {spec.kind} {spec.site_id}",
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


def visits(spec: BuildingSpec, hours: float) -> dict[str, list[dict[str, Any]]]:
    """Cars plugged in during the first half hour, leaving after the run ends (so every need
    counts), each wanting what a few hours at a fraction of its charger's rating give."""
    rng = random.Random(spec.seed * 7 + 1)
    out = {}
    for i, c in enumerate(spec.chargers):
        arrive = 5 + 2 * i
        stay_min = int(hours * 60) + rng.randint(30, 120)
        energy = round(rng.uniform(0.15, 0.35) * c.kw * hours, 1)
        out[c.id] = [
            {
                "arrival": f"PT{arrive}M",
                "departure": f"PT{arrive + stay_min}M",
                "energy_needed_kwh": energy,
                "vehicle_max_kw": c.kw,
            }
        ]
    return out


def history_days(gen: Generated) -> int:
    """Days of synthetic history the generated site's settlement needs: its default
    program's like days (10-of-10 working days) before the run's day in the site's holiday
    calendar, so that its reports use like days and not their fallback (at most the
    scenario format's 45; cheap: history is synthesised, not replayed)."""
    settlement = SettlementConfig()  # site_data writes no settlement section: the default
    need = history_days_needed(
        settlement.default,
        gen.start_local.date(),
        calendar=settlement.calendar(gen.spec.timezone),
    )
    return min(need, MAX_HISTORY_DAYS)


def scenario_data(
    gen: Generated,
    site_file: str,
    *,
    strategy: str = "optimiser",
    history: int | None = None,
) -> dict[str, Any]:
    """The scenario file's data of `gen`, on the site file at `site_file`; `history_days`
    what its settlement needs (`history_days`) unless `history` is given."""
    spec = gen.spec
    hours = gen.duration.total_seconds() / 3600
    return {
        "name": f"{spec.site_id}-day",
        "description": f"generated (seed {spec.seed}): a {spec.kind} in {spec.timezone}",
        "site": site_file,
        "timezone": spec.timezone,
        "start": gen.start_local.isoformat(),
        "duration": format_duration(gen.duration),
        "seed": spec.seed,
        "strategy": strategy,
        "history_days": history_days(gen) if history is None else history,
        "weather": {"outdoor_min_c": spec.outdoor_min_c, "outdoor_max_c": spec.outdoor_max_c},
        "base_load": {"peak_kw": spec.base_peak_kw, "noise_kw": 2, "shape": spec.shape},
        "ev_arrivals": {"explicit": visits(spec, hours)},
        "events": gen.events,
        "faults": gen.faults,
    }


def write(
    seed: int, out: Path, *, strategy: str = "optimiser", first_event_only: bool = False
) -> tuple[Path, Path]:
    """Write the site file and the scenario file of `seed` into `out` (created); returns
    their paths (the scenario names the site file by its name, beside it)."""
    gen = draw(seed).first_event_only() if first_event_only else draw(seed)
    out.mkdir(parents=True, exist_ok=True)
    site = out / f"{gen.spec.site_id}.yaml"
    site.write_text(yaml.safe_dump(site_data(gen.spec), sort_keys=False))
    scenario = out / f"{gen.spec.site_id}-scenario.yaml"
    data = scenario_data(gen, site.name, strategy=strategy)
    scenario.write_text(yaml.safe_dump(data, sort_keys=False))
    return site, scenario
