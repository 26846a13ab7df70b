"""The control baseline's forecast is made again at each plan until the event starts
(issue 12, seed 4): a car that plugs in after the event arrived joins it, at its floor;
from the event's start the baseline is fixed."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.grid.helpers import NOW, event_dict, payload
from vpp.control.dispatcher import Dispatcher
from vpp.control.strategy import Optimiser
from vpp.control.types import DeviceView, Snapshot
from vpp.dr.controller import DrController
from vpp.dr.planning import floor_step
from vpp.service import site_forecast
from vpp.site import load_site
from vpp.store.store import Store

OFFICE = Path(__file__).resolve().parent.parent / "config" / "sites" / "office.yaml"
START = NOW + timedelta(minutes=45)


class _Clock:
    """Time that moves only when the test says (the controller reads `now`)."""

    def __init__(self) -> None:
        self.at = NOW

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return (self.at - NOW).total_seconds()

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


class _Link:
    """A grid link that keeps what the agent sends."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def run(self) -> None: ...

    async def receive(self) -> Any: ...

    def send_response(self, response: Any) -> None:
        self.sent.append(response)

    def send_report(self, report: dict[str, Any]) -> None:
        self.sent.append(report)

    def send_telemetry(self, telemetry: dict[str, Any]) -> None: ...

    async def flush(self) -> None: ...

    async def close(self) -> None: ...


async def test_a_car_plugged_in_before_the_start_joins_the_baseline_and_not_after() -> None:
    site = load_site(OFFICE)
    clock = _Clock()
    plugged: set[str] = set()

    def snapshot() -> Snapshot:
        views = {}
        for d in site.devices:
            values: dict[str, float] = {}
            if d.kind.value == "ev_charger":
                values = {"plugged": 1.0 if d.id in plugged else 0.0, "power_kw": 0.0}
                values["session_energy_kwh"] = 0.0
            views[d.id] = DeviceView(d.id, True, values, clock.now())
        return Snapshot(clock.now(), 0.0, 300.0, views)

    async def idle() -> None: ...

    dr = DrController(
        site, clock, site_forecast(site), store=Store(":memory:"), link=_Link(),
        dispatcher=Dispatcher(site), snapshot=snapshot, request_cycle=lambda: None,
        cycle_idle=idle, strategy=Optimiser(), offers=False, solve_in_thread=False,
    )  # fmt: skip
    iv = [{"start": START.isoformat(), "duration": "PT30M", "value": 50}]
    dr.events.handle(payload(event_dict(event_id="e", intervals=iv)))
    await dr.replan()
    first = dict(dr.baselines["e"])
    # 15 min later, before the start: ev1 plugs in (the office's defaults: 25 kWh in 9 h).
    plugged.add("ev1")
    clock.advance(15 * 60)
    await dr.replan()
    second = dict(dr.baselines["e"])
    floor = 1.15 * 25 / 9
    at = floor_step(START)
    assert second[at] >= first[at] + 0.9 * floor
    assert all(second[t] >= first[t] - 1e-6 for t in first)  # never lower
    # After the start a car plugging in changes nothing: the event's own baseline holds.
    plugged.add("ev2")
    clock.advance(45 * 60)
    await dr.replan()
    assert dr.baselines["e"] == second
