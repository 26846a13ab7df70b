"""A 3.1 `DISPATCH_SETPOINT` event is an import target (issue 14): the real agent on the small
simulated site (Modbus TCP, real Mosquitto, the virtual clock) with its 3.1 VEN polling the
spec-validated test VTN. The first interval asks for more import than the site takes (the
battery must charge to reach it), the second for less (shed, as under a cap); the metered
import follows each within a tolerance, and the reports say so. Every body is valid.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import pytest

from devices.clock import VirtualClock
from tests.conftest import Broker
from tests.grid.helpers import NOW
from tests.grid.live import advance_until
from tests.oadr3.live import (
    cap_event,
    meter_kw,
    oadr3_site,
    program,
    running_agent,
    until_final_report,
)
from tests.oadr3_vtn.server import serve
from vpp.site import BrokerConfig

STEP = timedelta(minutes=5)
ABOVE_KW = 40.0  # the first interval's target above the import before the event
BELOW_KW = 30.0  # the second's below it
TOLERANCE_KW = 5.0  # the loop's half deadband, the base load's noise and a cycle's lag


@pytest.mark.timeout(120)
async def test_dispatch_setpoint_is_followed_above_and_below_the_natural_import(
    mosquitto: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    store = tmp_path / "s.sqlite"
    with serve() as vtn:
        site = oadr3_site(vtn, monkeypatch)
        async with running_agent(site, clock, broker, store) as live:
            now = clock.now()
            start = (now + timedelta(minutes=3)).replace(second=0, microsecond=0)
            await advance_until(clock, lambda: clock.now() >= start - STEP / 5, 600, 5.0)
            before = meter_kw(store, start - STEP, start)
            assert before, "the meter was read before the event"
            natural = math.fsum(before) / len(before)
            targets = [round(natural + ABOVE_KW, 1), round(natural - BELOW_KW, 1)]
            event = cap_event(
                vtn,
                program(vtn)["id"],
                start,
                targets,
                duration=STEP,
                payload_type="DISPATCH_SETPOINT",
            )
            end = start + STEP * len(targets)
            await until_final_report(clock, vtn, end)
            native = f"oadr3.{event['id']}"
            answers = [r for r in live.agent.store.responses(native) if r["status"] == "opt_in"]
            (report,) = live.agent.store.reports(native, final_only=True)

    # Followed both ways: each interval's metered minutes (the first, the loop's ramp, aside)
    # within the tolerance of its target; the site naturally imports far from both.
    for i, target in enumerate(targets):
        a = start + STEP * i
        minutes = meter_kw(store, a + timedelta(minutes=1), a + STEP)
        assert len(minutes) >= 3, minutes
        mean = math.fsum(minutes) / len(minutes)
        assert abs(mean - target) <= TOLERANCE_KW, (i, target, minutes, natural)
    # The reports' DEMAND follows the target too, and the VTN saw only valid bodies.
    final = next(r for r in vtn.objects["reports"].values() if r["reportName"].endswith("final"))
    demand = {
        iv["id"]: {p["type"]: p["values"][0] for p in iv["payloads"]}["DEMAND"]
        for iv in final["resources"][0]["intervals"]
    }
    assert demand[10] > natural + ABOVE_KW / 2, (demand, natural)
    assert demand[11] < natural - BELOW_KW / 2, (demand, natural)
    assert vtn.bad_exchanges() == []
    # The native report rates each interval by how close the import came to its target.
    ratios = [iv["ratio"] for iv in report["intervals"]]
    assert len(ratios) == 2 and min(ratios) >= 0.9, report
    # Opted in once, with the import the plan foresees for each interval.
    (answer,) = answers
    assert len(answer["expected_kw"]) == len(targets)
