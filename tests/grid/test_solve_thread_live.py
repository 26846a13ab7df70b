"""Live (wall clock) the planner solves in a worker thread: an event arriving while a solve
runs is answered `received` at once, and `opt_in` by the next plan (never by a plan that
did not include it)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import structlog

from devices.clock import WallClock
from tests.conftest import Broker
from tests.grid.helpers import event_dict, interval, payload
from tests.grid.live import agent_for, night_timezone, sim_for, small_site, watcher
from vpp.dr.planning import Plan
from vpp.site import BrokerConfig

SLOW_S = 0.6


async def _poll(check: Callable[[], bool], wall_s: float) -> None:
    """Return once `check()` is true, polling every 5 ms; TimeoutError after `wall_s`."""
    for _ in range(int(wall_s / 0.005)):
        if check():
            return
        await asyncio.sleep(0.005)
    raise TimeoutError(f"not true within {wall_s} s")


async def test_event_during_a_solve_is_received_at_once_and_planned_next(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """With logging configured as the CLI does (the stream bound once; here a file of the
    test's own, loggers not cached, so nothing outlives the test)."""
    with (tmp_path / "log.txt").open("w") as sink:
        structlog.configure(
            logger_factory=structlog.PrintLoggerFactory(file=sink),
            cache_logger_on_first_use=False,
        )
        try:
            await _run(mosquitto, tmp_path)
        finally:
            structlog.reset_defaults()


async def _run(mosquitto: Broker, tmp_path: Path) -> None:
    clock = WallClock()
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    # The site's night (valley prices, a battery with room): the test is about the thread,
    # not about what a plan at the evening peak can offer.
    site = small_site(night_timezone(clock.now()))
    sim = sim_for(site, clock, broker)
    async with sim, watcher(broker, clock) as grid:
        agent, dr = agent_for(site, sim, clock, broker, tmp_path / "s.sqlite")
        assert dr.solve_in_thread  # the default with structlog configured, on the wall clock
        solving = threading.Event()
        solver_threads: set[int] = set()
        real_plan = dr.planner.plan

        def slow_plan(problem: object, made_at: object) -> Plan:
            # A solve as slow as a large site's: the real one, then a wait in its thread.
            solver_threads.add(threading.get_ident())
            solving.set()
            try:
                plan = real_plan(problem, made_at)  # type: ignore[arg-type]
                time.sleep(SLOW_S)
                return plan
            finally:
                solving.clear()

        dr.planner.plan = slow_plan  # type: ignore[method-assign]
        stop = asyncio.Event()
        run = asyncio.create_task(agent.run(stop))
        try:
            await _poll(lambda: dr.plans >= 1, 15)
            start = clock.now().replace(microsecond=0) + timedelta(minutes=30)
            ivs = [interval(start.isoformat(), "PT30M", 30)]
            await grid.send(payload(event_dict(event_id="first", intervals=ivs)))
            await _poll(solving.is_set, 5)
            t0 = time.perf_counter()
            later = [interval((start + timedelta(hours=1)).isoformat(), "PT30M", 20)]
            await grid.send(payload(event_dict(event_id="second", intervals=later)))
            await grid.until(lambda: "received" in grid.statuses("second"), 5)
            received_s = time.perf_counter() - t0
            assert solving.is_set(), "the solve was still running when `received` came"
            assert received_s < SLOW_S / 2, received_s
            await grid.until(lambda: "opt_in" in grid.statuses("second"), 15)
        finally:
            stop.set()
            await asyncio.wait_for(run, 20)
    assert threading.get_ident() not in solver_threads
    assert grid.statuses("first") == ["received", "opt_in"]
    assert grid.statuses("second") == ["received", "opt_in"]
    order = [(r["event_id"], r["status"]) for r in grid.responses]
    # "second" arrived during the plan that answered "first": it was answered by a later one.
    assert order.index(("first", "opt_in")) < order.index(("second", "opt_in"))
