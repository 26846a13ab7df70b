"""The forecast baseline is the plan as the devices will follow it (issue 12, seed 4): a
charger the plan leaves idle in dear hours still charges its car at its floor, and what the
floor gave early the plan's cheap hour no longer draws."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from vpp.control.dispatcher import Dispatcher
from vpp.control.types import DeviceView, Snapshot
from vpp.site import load_site

OFFICE = Path(__file__).resolve().parent.parent / "config" / "sites" / "office.yaml"
NOW = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)
DT_H = 0.25


def _dispatcher_and_inputs(plugged: bool) -> tuple[Dispatcher, dict[str, object]]:
    d = Dispatcher(load_site(OFFICE))
    values = {"plugged": 1.0 if plugged else 0.0, "power_kw": 0.0, "session_energy_kwh": 0.0}
    views = {"ev1": DeviceView("ev1", True, values, NOW)}
    return d, d.plan_inputs(Snapshot(NOW, 0.0, 100.0, views))


def test_a_car_the_plan_leaves_idle_is_forecast_at_its_floor_and_no_more_than_its_need() -> None:
    d, inputs = _dispatcher_and_inputs(plugged=True)
    # The office's EV defaults: 25 kWh within 9 h. The plan charges it all in the cheap
    # hour, 4 h from now (5 steps at 20 kW).
    planned = [0.0] * 16 + [20.0] * 5 + [0.0] * 15
    base = [100.0] * len(planned)
    battery = [-30.0] * len(planned)  # a device without a floor: its plan is what it draws
    out = d.followed_import_kw({"ev1": planned, "bat1": battery}, base, DT_H, inputs)
    # The import is the plan's plus what the car draws beyond its plan.
    ev = [kw - b + p for kw, b, p in zip(out, base, planned, strict=True)]
    # Each idle step draws the floor for what is still needed in the stay left.
    need, left_h = 25.0, 9.0
    for kw in ev[:16]:
        assert abs(kw - 1.15 * need / left_h) < 1e-6
        need, left_h = need - kw * DT_H, left_h - DT_H
    assert ev[0] > 3.0
    # The floor's energy comes off the cheap hour: the car's 25 kWh, not 25 + the floor's.
    assert abs(sum(ev) * DT_H - 25.0) < 1e-6
    assert sum(ev[16:21]) < sum(planned[16:21])


def test_without_a_car_plugged_the_forecast_is_the_plan() -> None:
    d, inputs = _dispatcher_and_inputs(plugged=False)
    planned = [0.0] * 8 + [11.0] * 4
    base = [100.0 + k for k in range(len(planned))]
    assert d.followed_import_kw({"ev1": planned}, base, DT_H, inputs) == base
