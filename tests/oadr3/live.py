"""The small live site (tests/grid/live.py) with an OpenADR 3.1 link to the test VTN beside
the native MQTT contract, and what the tests create on the VTN."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devices.clock import VirtualClock
from tests.grid.live import Watcher, advance_until, agent_for, sim_for, small_site_data, watcher
from tests.oadr3_vtn.app import Vtn
from tests.oadr3_vtn.server import BL_CLIENT, VEN_CLIENT
from vpp.agent import Agent
from vpp.grid.fanout import FanoutLink
from vpp.grid.oadr3.link import Oadr3Link
from vpp.site import BrokerConfig, Site, parse_site

SECRET_ENV = "VPP_TEST_OADR3_SECRET"
VEN_NAME = "office-1"


def oadr3_site(
    vtn: Vtn,
    monkeypatch: pytest.MonkeyPatch,
    *,
    poll_s: float = 5.0,
    data: dict[str, Any] | None = None,
) -> Site:
    """The small site (or the site file `data`) with `grid.openadr3` pointing at `vtn` (and
    the native MQTT link)."""
    monkeypatch.setenv(SECRET_ENV, VEN_CLIENT[1])
    data = small_site_data() if data is None else data
    data["grid"] = {
        "openadr3": {
            "vtn_url": vtn.base_url,
            "client_id": VEN_CLIENT[0],
            "client_secret_env": SECRET_ENV,
            "ven_name": VEN_NAME,
            "poll_s": poll_s,
        },
        "simple_levels_kw": {1: 20, 2: 40, 3: 60},
    }
    return parse_site(data, Path("live-oadr3.yaml"))


def program(vtn: Vtn, name: str = "summer-capacity") -> dict[str, Any]:
    return vtn.create("programs", {"programName": name}, BL_CLIENT[0])


def cap_event(
    vtn: Vtn,
    program_id: str,
    start: datetime,
    caps_kw: list[float],
    *,
    duration: timedelta = timedelta(minutes=15),
    descriptors: tuple[tuple[str, str], ...] = (
        ("USAGE", "KWH"),
        ("DEMAND", "KW"),
        ("BASELINE", "KW"),
    ),
    payload_type: str = "IMPORT_CAPACITY_LIMIT",
) -> dict[str, Any]:
    """An IMPORT_CAPACITY_LIMIT event (or another KW `payload_type`): consecutive intervals
    of `duration` from `start`, the first with the event's period, the others following on
    (no intervalPeriod)."""
    minutes = int(duration.total_seconds() // 60)
    body = {
        "programID": program_id,
        "eventName": payload_type.lower(),
        "intervalPeriod": {"start": start.isoformat(), "duration": f"PT{minutes}M"},
        "payloadDescriptors": [
            {
                "objectType": "EVENT_PAYLOAD_DESCRIPTOR",
                "payloadType": payload_type,
                "units": "KW",
            }
        ],
        "reportDescriptors": [
            {"payloadType": p, "units": u, "readingType": "DIRECT_READ"} for p, u in descriptors
        ],
        "targets": [VEN_NAME],
        "intervals": [
            {"id": 10 + i, "payloads": [{"type": payload_type, "values": [cap]}]}
            for i, cap in enumerate(caps_kw)
        ],
    }
    return vtn.create("events", body, BL_CLIENT[0])


def meter_kw(store: Path, a: datetime, b: datetime, column: str = "mean") -> list[float]:
    """The site meter's stored minutes in [a, b): each minute's `column` (mean, min, max)."""
    assert column in ("mean", "min", "max")
    with sqlite3.connect(store) as db:
        rows = db.execute(
            f"SELECT {column} FROM telemetry WHERE device_id='meter'"
            " AND point='import_power_kw' AND ts>=? AND ts<? ORDER BY ts",
            (a.timestamp(), b.timestamp()),
        ).fetchall()
    return [r[0] for r in rows]


async def until_final_report(clock: VirtualClock, vtn: Vtn, end: datetime) -> None:
    """Let simulated time run until the VTN holds a final report (bounded: 300 s past `end`)."""
    await advance_until(
        clock,
        lambda: any(r["reportName"].endswith("final") for r in vtn.objects["reports"].values()),
        virtual_s=(end - clock.now()).total_seconds() + 300,
        step_s=5.0,
    )


@dataclass
class Running:
    """A running agent, its 3.1 VEN and the native contract's grid side."""

    agent: Agent
    ven: Oadr3Link
    grid: Watcher


@asynccontextmanager
async def running_agent(
    site: Site, clock: VirtualClock, broker: BrokerConfig, store: Path
) -> AsyncIterator[Running]:
    """The agent of `site` running on its simulated devices (and a grid watcher on the
    broker), once it has planned and its 3.1 VEN has registered; stopped on exit."""
    sim = sim_for(site, clock, broker)
    async with sim, watcher(broker, clock) as grid:
        agent, dr = agent_for(site, sim, clock, broker, store)
        assert isinstance(agent.link, FanoutLink)
        ven = agent.link.links["openadr3"]
        assert isinstance(ven, Oadr3Link)
        stop = asyncio.Event()
        run = asyncio.create_task(agent.run(stop))
        try:
            await advance_until(clock, lambda: dr.plans >= 1 and ven.registered.is_set())
            yield Running(agent, ven, grid)
        finally:
            stop.set()
            await asyncio.wait_for(run, 30)
