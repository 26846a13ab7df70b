"""Malformed event messages through the RUNNING agent (DrController, simulated site, virtual
clock, real Mosquitto): each gets exactly one `rejected` naming the bad field, nothing else
changes, and the agent keeps working."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from devices.clock import VirtualClock
from tests.conftest import Broker
from tests.grid.helpers import NOW, event_dict, interval, payload
from tests.grid.live import advance_until, agent_for, sim_for, small_site, watcher
from tests.grid.test_parse import MALFORMED
from vpp.site import BrokerConfig

# The event the site holds while the malformed ones arrive: immediate, two 30-min intervals.
HELD = "live-held"
LATER = "live-later"


def _from(clock: VirtualClock, minutes: int, kw: float) -> list[dict[str, Any]]:
    """Two 30-min intervals of `kw` from `minutes` after the clock's current minute."""
    t0 = clock.now().replace(second=0, microsecond=0) + timedelta(minutes=minutes)
    return [interval((t0 + timedelta(minutes=30 * k)).isoformat(), "PT30M", kw) for k in range(2)]


def _ends_after(start: str) -> bytes:
    return payload(event_dict(intervals=[interval(start, "PT30M", 10)]))


def _tables(store: Any) -> dict[str, list[tuple[Any, ...]]]:
    return {
        name: list(store.rows(f"SELECT * FROM {name} ORDER BY rowid"))
        for name in ("events", "baselines", "reports", "commands")
    }


async def test_malformed_events_are_rejected_once_and_change_nothing(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """Every malformed message (the 58 kinds of tests/grid/test_parse.py, plus a stale
    modification of a live event and a new event that ended in 2020) sent to the running
    agent gets exactly one `rejected` whose `errors` name the bad field, in the order sent.

    "Unchanged" means, with the clock held still over the whole malformed batch (so no
    periodic control cycle, plan or telemetry window can run meanwhile): the store's
    `events`, `baselines`, `reports` and `commands` tables are identical row for row; the
    `responses` table gains exactly one row per malformed message, each `rejected` (the
    contract stores every answer); the EventManager's states are the same objects; no plan
    was made (`plans` and the plan object unchanged) and no control cycle was asked for.
    Afterwards the agent still works: a new valid event gets `received` then `opt_in`, and
    telemetry keeps flowing.
    """
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    site = small_site()
    sim = sim_for(site, clock, broker)
    async with sim, watcher(broker, clock) as grid:
        agent, dr = agent_for(site, sim, clock, broker, tmp_path / "s.sqlite")
        stop = asyncio.Event()
        run = asyncio.create_task(agent.run(stop))
        try:
            await advance_until(clock, lambda: dr.plans >= 1 and len(grid.telemetry) >= 2)
            async with clock.hold():
                await grid.until(lambda: dr.plans >= 1 and len(grid.telemetry) >= 2)
                # A live event the stale message can target: answered and planned. Time
                # stands still while the answers travel (it would race ahead otherwise).
                held = event_dict(event_id=HELD, modification=1, intervals=_from(clock, 0, 50))
                await grid.send(payload(held))
                await grid.until(lambda: "opt_in" in grid.statuses(HELD))
            assert grid.statuses(HELD) == ["received", "opt_in"]

            # The 7-days-ahead kind is relative to the site's now, which has moved on.
            ahead = (clock.now() + timedelta(days=7)).isoformat()
            week = ("interval ends more than 7 days ahead", _ends_after(ahead), "intervals[0]")
            bad = [(*week, "7 days") if c[0] == week[0] else c for c in MALFORMED]
            stale = event_dict(event_id=HELD, modification=0)
            bad.append(("stale modification", payload(stale), "modification", "older"))
            old = event_dict(
                event_id="live-2020", intervals=[interval("2020-06-01T14:00:00+08:00")]
            )
            bad.insert(
                -1, ("ended in 2020", payload(old), "intervals[0]", "before the site received")
            )
            assert len(bad) >= 25
            async with clock.hold():
                await asyncio.sleep(0.2)  # answers already on their way arrive first
                n_responses = len(grid.responses)
                before = _tables(agent.store)
                stored_responses = len(agent.store.responses())
                states = dict(dr.events.states)
                plans, plan, cycles = dr.plans, dr.plan, agent.cycles
                for _, data, _, _ in bad:
                    await grid.send(data)
                await grid.until(lambda: len(grid.responses) >= n_responses + len(bad))
                await asyncio.sleep(0.2)  # an extra answer would show up here
                got = grid.responses[n_responses:]
                assert len(got) == len(bad), [
                    (r["event_id"], r["status"], r.get("errors")) for r in got
                ]
                for (kind, _, loc, words), r in zip(bad, got, strict=True):
                    assert r["status"] == "rejected", kind
                    locs = [e["loc"] for e in r["errors"]]
                    assert locs == [loc], (kind, r["errors"])
                    assert words.lower() in r["errors"][0]["msg"].lower(), (kind, r["errors"])
                    assert r["reason"], kind
                assert got[-1]["event_id"] == HELD and got[-1]["modification"] == 0
                assert _tables(agent.store) == before
                new_rows = agent.store.responses()[stored_responses:]
                assert [r["status"] for r in new_rows] == ["rejected"] * len(bad)
                assert dr.events.states == states
                assert all(dr.events.states[k] is v for k, v in states.items())
                assert (dr.plans, dr.plan, agent.cycles) == (plans, plan, cycles)
                assert dr.events.rejected == len(bad)
                assert run.done() is False

            # Still working: a valid event is answered and planned, telemetry flows on.
            later = event_dict(event_id=LATER, intervals=_from(clock, 60, 30))
            async with clock.hold():
                await grid.send(payload(later))
                await grid.until(lambda: "opt_in" in grid.statuses(LATER))
            assert grid.statuses(LATER) == ["received", "opt_in"]
            seen = len(grid.telemetry)
            await advance_until(clock, lambda: len(grid.telemetry) >= seen + 2)
            # The stale message was answered, and changed nothing.
            assert grid.statuses(HELD) == ["received", "opt_in", "rejected"]
            assert agent.store.event(HELD) is not None
            assert agent.store.event(HELD).modification == 1  # type: ignore[union-attr]
        finally:
            stop.set()
            await asyncio.wait_for(run, 20)
