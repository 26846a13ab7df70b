"""Flexibility offers from a running agent (real Mosquitto, the simulated site over Modbus,
the virtual clock): one after the first plan, one at once per offer request, nothing but a
logged error for a malformed request."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import structlog

from devices.clock import VirtualClock
from tests.conftest import Broker
from tests.grid.helpers import NOW, event_dict, interval, payload
from tests.grid.live import advance_until, agent_for, sim_for, small_site, watcher
from vpp.grid.offers import OFFER_DURATIONS
from vpp.grid.schemas import DEFAULT_DIR
from vpp.site import BrokerConfig

OFFER_SCHEMA = json.loads((DEFAULT_DIR / "offer.json").read_text())


def _valid(offer: dict[str, Any]) -> None:
    errors = [e.message for e in jsonschema.Draft202012Validator(OFFER_SCHEMA).iter_errors(offer)]
    assert not errors, errors


async def test_offer_after_the_first_plan_and_on_request(mosquitto: Broker, tmp_path: Path) -> None:
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    site = small_site()
    sim = sim_for(site, clock, broker)
    async with sim, watcher(broker, clock) as grid:
        agent, dr = agent_for(site, sim, clock, broker, tmp_path / "site.sqlite")
        assert dr.offers is not None
        stop = asyncio.Event()
        run = asyncio.create_task(agent.run(stop))
        try:
            t0 = time.perf_counter()
            await advance_until(clock, lambda: len(grid.offers) >= 1)
            first = grid.offers[0]
            stats = dr.offers.maker.last_stats
            print(f"offer: {stats} in {time.perf_counter() - t0:.1f} s wall")
            _valid(first)
            assert first["site_id"] == site.id and first["request_id"] is None
            assert dr.plans >= 1
            starts = sorted({datetime.fromisoformat(w["start"]) for w in first["windows"]})
            now = clock.now()
            assert (starts[0] - now).total_seconds() >= 15 * 60
            assert len(first["windows"]) == len(starts) * len(OFFER_DURATIONS) == 20
            by = {(w["start"], w["duration"]): w for w in first["windows"]}
            # The battery (80 kWh above its reserve, 100 kW) and two 20 kW loads: a short
            # window holds far more than a 4-hour one; a longer window never holds more.
            s0 = first["windows"][0]["start"]
            short, long_ = by[(s0, "PT15M")], by[(s0, "PT4H")]
            assert short["curtail_kw"] > 100 > long_["curtail_kw"] > 0
            for w in first["windows"]:
                assert 0 <= w["curtail_kw_p90"] <= w["curtail_kw"]
                assert w["curtail_kw_p90"] == round(0.9 * w["curtail_kw"], 1)
                assert w["cost_per_kwh"] >= 0
            for s in {w["start"] for w in first["windows"]}:
                kws = [by[(s, d)]["curtail_kw"] for d in ("PT15M", "PT30M", "PT1H", "PT2H", "PT4H")]
                assert kws == sorted(kws, reverse=True), kws

            # On request: a fresh offer echoing the request id, at once.
            before = clock.now()
            with structlog.testing.capture_logs() as logs:
                await grid.request_offer(b'{"v": 1, "request_id": "rq-1", "ts": 5}')
                await grid.request_offer(
                    payload({"v": 1, "request_id": "rq-2", "ts": clock.now().isoformat()})
                )
                await advance_until(clock, lambda: len(grid.offers) >= 2, virtual_s=10)
            answer = grid.offers[1]
            _valid(answer)
            assert answer["request_id"] == "rq-2" and answer["offer_id"] != first["offer_id"]
            assert (clock.now() - before).total_seconds() <= 5
            bad = [e for e in logs if e["event"] == "offer_request_invalid"]
            assert [(e["field"], e["log_level"]) for e in bad] == [("ts", "error")]
            assert dr.offers.rejected == 1 and len(grid.offers) == 2

            # The agent goes on answering events.
            start = (clock.now() + timedelta(hours=1)).replace(second=0, microsecond=0)
            iv = interval(start.isoformat(), value=30)
            ev = event_dict(event_id="after-offer", intervals=[iv])
            await grid.send(payload(ev))
            await advance_until(clock, lambda: "opt_in" in grid.statuses("after-offer"))
        finally:
            stop.set()
            await asyncio.wait_for(run, 20)
