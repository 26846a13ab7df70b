"""An agent killed in the middle of an active curtail event, and a new agent started on the
same store: the event carries on and is reported in full."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import timedelta
from pathlib import Path

from devices.clock import VirtualClock
from tests.conftest import Broker
from tests.grid.helpers import NOW, event_dict, interval, payload
from tests.grid.live import advance_until, agent_for, sim_for, small_site, watcher
from vpp.dr.events import EventManager
from vpp.dr.planning import floor_step
from vpp.mqtt_link import MqttLink
from vpp.site import BrokerConfig
from vpp.store.store import Store

EID = "resume-1"
IV = timedelta(minutes=5)


def _durable_copy(path: Path) -> sqlite3.Connection:
    """What a killed process leaves in its SQLite file: every committed row (the store runs
    in autocommit), not the telemetry windows still open in memory."""
    copy = sqlite3.connect(":memory:")
    src = sqlite3.connect(path)
    src.backup(copy)
    src.close()
    return copy


def _restore(copy: sqlite3.Connection, path: Path) -> None:
    dst = sqlite3.connect(path)
    copy.backup(dst)
    dst.close()
    copy.close()


async def test_killed_agent_resumes_active_event_on_the_same_store(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """The kill: agent A's run task is cancelled without the stop path (no `offline` status,
    no drain of its outbox, every task cancelled wherever it is), and the store file is put
    back to the rows committed at that instant (the open telemetry windows that A's
    `finally` flushes on cancel are lost to a real SIGKILL). A SIGKILL of a `vpp run`
    subprocess would need the wall clock through a 15-min event; on the virtual clock the
    cancel is the same loss of in-memory state. The simulated devices run on meanwhile.

    Agent B on the same file resumes: no second `received`/`opt_in` (the event is answered
    already; the contract resends nothing on resume), the stored baseline is reused as is,
    its target is the event's at once, and the reports cover every interval, the ones
    before the kill from A's stored telemetry; then `completed`.
    """
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    site = small_site()
    sim = sim_for(site, clock, broker)
    store = tmp_path / "site.sqlite"
    async with sim, watcher(broker, clock) as grid:
        agent, dr = agent_for(site, sim, clock, broker, store)
        run = asyncio.create_task(agent.run(asyncio.Event()))
        await advance_until(clock, lambda: dr.plans >= 1)
        # An hour ahead: the settlement baseline (the mean of the hour before the event) is
        # then made of a whole hour of metered import, not of the agent's first minute.
        t0 = clock.now().replace(second=0, microsecond=0) + timedelta(minutes=61)
        ivs = [interval((t0 + k * IV).isoformat(), "PT5M", 40) for k in range(3)]
        async with clock.hold():
            await grid.send(payload(event_dict(event_id=EID, intervals=ivs)))
            await grid.until(lambda: "opt_in" in grid.statuses(EID))
        # Kill in the middle of the second interval, once the first one is reported.
        await clock.sleep((t0 + IV + IV / 2 - clock.now()).total_seconds())
        async with clock.hold():
            await grid.until(lambda: len(grid.reports) >= 1)
            assert dr.last_target is not None and dr.last_target.event_id == EID
            before_kill = [r["status"] for r in agent.store.responses(EID)]
            assert before_kill == ["received", "opt_in"]
            method, baseline = agent.store.baseline(EID)
            assert baseline and method
            durable = _durable_copy(store)
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
            _restore(durable, store)
        await clock.sleep(20)  # the restart takes a while; the site runs on

        agent_b, dr_b = agent_for(site, sim, clock, broker, store)
        assert dr_b.baselines[EID] == baseline
        assert dr_b.reporter.methods[EID] == method
        stop = asyncio.Event()
        run_b = asyncio.create_task(agent_b.run(stop))
        try:
            await advance_until(clock, lambda: dr_b.plans >= 1 and agent_b.cycles >= 2)
            assert dr_b.last_target is not None and dr_b.last_target.event_id == EID
            # The baseline is not made again, the plan is made with the event.
            assert dr_b.baselines[EID] == baseline
            assert dr_b.plan is not None
            await clock.sleep((t0 + 3 * IV - clock.now()).total_seconds() + 30)
            async with clock.hold():
                await grid.until(lambda: "completed" in grid.statuses(EID))
        finally:
            stop.set()
            await asyncio.wait_for(run_b, 20)
    assert grid.statuses(EID) == ["received", "opt_in", "completed"]
    # The site publishes exactly the contract's report (grid.extensions off): the final
    # report is the one with all of the event's intervals.
    final = [r for r in grid.reports if len(r["intervals"]) == len(ivs)]
    assert len(final) == 1
    rep = final[0]
    assert rep["event_id"] == EID
    assert [iv["start"] for iv in rep["intervals"]] == [iv["start"] for iv in ivs]
    for iv in rep["intervals"]:
        assert iv["actual_kw"] is not None, iv
        assert iv["baseline_kw"] is not None, iv
        assert iv["requested_kw"] == 40
    # Interval 1 was entirely before the kill: its actual import comes from A's telemetry.
    assert rep["intervals"][0]["delivered_kw"] > 20, rep
    # Interval 3 was entirely after the restart: B delivered it against the same baseline.
    assert rep["intervals"][2]["delivered_kw"] > 20, rep
    partial = [r for r in grid.reports if len(r["intervals"]) < len(ivs)]
    assert [len([i for i in r["intervals"] if i["actual_kw"] is not None]) for r in partial] == [
        1,
        2,
    ]


async def test_event_received_but_not_planned_before_the_kill_is_planned_on_restart(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """A kill between `received` and the plan leaves the event stored as `received` with no
    baseline. The new agent makes its baseline, plans it and answers `opt_in`, without a
    second `received`."""
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    site = small_site()
    store_path = tmp_path / "site.sqlite"
    # What the killed agent left: the event stored and answered `received`, nothing more.
    store = Store(store_path)
    link = MqttLink(broker, site.id, clock, subscriptions=[])  # never connected: queues only
    t0 = NOW + timedelta(hours=1)
    ivs = [interval((t0 + k * IV).isoformat(), "PT5M", 30) for k in range(2)]
    EventManager(clock, store, link).handle(payload(event_dict(event_id=EID, intervals=ivs)))
    assert [r["status"] for r in store.responses(EID)] == ["received"]
    assert store.baseline(EID) == ("", {})
    store.close()

    sim = sim_for(site, clock, broker)
    async with sim, watcher(broker, clock) as grid:
        agent, dr = agent_for(site, sim, clock, broker, store_path)
        assert dr.events.states[EID].status == "received"
        stop = asyncio.Event()
        run = asyncio.create_task(agent.run(stop))
        try:
            await advance_until(clock, lambda: "opt_in" in grid.statuses(EID))
        finally:
            stop.set()
            await asyncio.wait_for(run, 20)
        assert grid.statuses(EID) == ["opt_in"]
    after = Store(store_path)
    method, profile = after.baseline(EID)
    assert "forecast" in method and min(profile) == floor_step(t0)
    assert [r["status"] for r in after.responses(EID)] == ["received", "opt_in"]
    after.close()
