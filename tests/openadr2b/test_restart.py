"""A restart of the agent against openleadr's VTN: the VEN registers again and gets its
venID back, asks for every event (oadrRequestEvent), and the agent, from its store, answers
the event it had with its stored status (optIn again) without receiving or planning it anew.
Only the 2.0b link (`grid.mqtt: false`): no broker."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.clock import WallClock
from tests.grid.live import agent_for, night_timezone, sim_for, small_site_data
from tests.openadr2b.ready import agent_ready
from tests.openadr2b.vtn_process import Vtn, running_vtn
from vpp.site import BrokerConfig, Site, parse_site


async def _run_until(
    site: Site, sim: object, store: Path, vtn: Vtn, check: object, what: str
) -> None:
    clock, broker = WallClock(), BrokerConfig()
    agent, dr = agent_for(site, sim, clock, broker, store)  # type: ignore[arg-type]
    stop = asyncio.Event()
    run = asyncio.create_task(agent.run(stop))
    try:
        await agent_ready(agent, dr)
        await vtn.until(check, 40, what)  # type: ignore[arg-type]
    finally:
        stop.set()
        await asyncio.wait_for(run, 30)


@pytest.mark.timeout(120)
async def test_a_restarted_agent_answers_its_event_again_from_its_store(
    openleadr: Path, tmp_path: Path
) -> None:
    data = small_site_data(night_timezone(datetime.now(UTC), 14))
    store = tmp_path / "s.sqlite"
    async with running_vtn(openleadr, poll_s=1, granularity_s=2, back_s=2) as vtn:
        data["grid"] = {"mqtt": False, "openadr2b": {"vtn_url": vtn.url, "ven_name": "live-1"}}
        site = parse_site(data, tmp_path / "site.yaml")
        async with sim_for(site, WallClock(), BrokerConfig()) as sim:
            start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)

            def add_when_ready() -> bool:
                # Once the agent has readings (a report above 0), the event goes in, once.
                ready = any(v > 0 for r in vtn.of("report") for _, v in r["values"])
                if ready and not vtn.of("added") and not vtn.of("command_failed"):
                    vtn.send(
                        cmd="add_event", ven_name="live-1", signal_name="LOAD_DISPATCH",
                        signal_type="delta", event_id="ev-r",
                        intervals=[{"start": start.isoformat(), "duration_s": 900, "value": 20}],
                    )  # fmt: skip
                return bool(vtn.of("created_event"))

            await _run_until(site, sim, store, vtn, add_when_ready, "the first answer")
            await _run_until(
                site, sim, store, vtn, lambda: len(vtn.of("created_event")) >= 2, "the answer again"
            )
    first, again = vtn.of("registered")[:2]
    assert first["ven_id"] == again["ven_id"]
    assert [(c["event_id"], c["modification"], c["opt_type"]) for c in vtn.of("created_event")] == [
        ("ev-r", 0, "optIn"),
        ("ev-r", 0, "optIn"),
    ]
    with sqlite3.connect(store) as db:
        rows = db.execute(
            "SELECT status FROM responses WHERE event_id='oadr2b-ev-r' ORDER BY id"
        ).fetchall()
    # Received and planned once; after the restart only its status again.
    assert [r[0] for r in rows] == ["received", "opt_in", "opt_in"]
