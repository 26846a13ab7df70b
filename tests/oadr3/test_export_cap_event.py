"""A 3.1 `EXPORT_CAPACITY_LIMIT` event end to end (issue 14): the real agent with its 3.1 VEN
polling the spec-validated test VTN, on the small simulated site made a PV exporter as in
tests/test_export_cap_event.py (a 150 kW array at 14:00, a 40 kW base load, the site allowed
to export 100 kW by its own limit), over Modbus TCP and real Mosquitto on the virtual clock.
Before the event the site exports far past the cap; during it the battery takes up the rest
and the export stays under the cap. Every request and response body is valid."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devices.clock import VirtualClock
from tests.conftest import Broker
from tests.grid.helpers import NOW
from tests.grid.live import small_site_data
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

CAP_KW = 5.0
STEP = timedelta(minutes=5)
LAG_TOLERANCE_KW = 2.0  # one control cycle's lag, as in tests/test_export_cap_event.py


def _pv_site_data() -> dict[str, Any]:
    data = small_site_data()
    data["limits"]["export_kw"] = 100
    data["sim"]["base_load"]["peak_kw"] = 40
    for d in data["devices"]:
        if d["type"] == "curtailable_load":
            d["sim"]["power_kw"] = 8
        if d["id"] == "bat1":
            d["sim"]["initial_soc_pct"] = 40
    data["devices"].append(
        {
            "id": "pv1",
            "type": "pv",
            "profile": "pv-inverter",
            "port": 21010,
            "sim": {"rated_kw": 150},
        }
    )
    return data


def _import_without_battery(store: Path, a: datetime, b: datetime) -> list[float]:
    """Per minute, the metered import less the battery's (kW): what the site would import
    with the battery idle."""
    with sqlite3.connect(store) as db:
        rows = db.execute(
            "SELECT m.mean - b.mean FROM telemetry m JOIN telemetry b ON b.ts = m.ts"
            " WHERE m.device_id='meter' AND m.point='import_power_kw'"
            " AND b.device_id='bat1' AND b.point='power_kw' AND m.ts>=? AND m.ts<? ORDER BY m.ts",
            (a.timestamp(), b.timestamp()),
        ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.timeout(120)
async def test_export_capacity_limit_from_the_vtn_keeps_the_export_under_it(
    mosquitto: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    store = tmp_path / "s.sqlite"
    with serve() as vtn:
        site = oadr3_site(vtn, monkeypatch, data=_pv_site_data())
        async with running_agent(site, clock, broker, store) as live:
            start = (clock.now() + timedelta(minutes=3)).replace(second=0, microsecond=0)
            event = cap_event(
                vtn,
                program(vtn)["id"],
                start,
                [CAP_KW, CAP_KW],
                duration=STEP,
                payload_type="EXPORT_CAPACITY_LIMIT",
            )
            end = start + STEP * 2
            await until_final_report(clock, vtn, end)
            native = f"oadr3.{event['id']}"
            signals = [
                e.payload["event"]["signal"]
                for e in live.agent.store.events()
                if e.event_id == native
            ]

    assert signals and set(signals) == {"export_cap_kw"}
    # The control: without the battery's charging the site would have exported far past the
    # cap in every minute (so the assertion below could fail): the battery took it up.
    unheld = _import_without_battery(store, start, end)
    assert len(unheld) >= 9 and max(unheld) < -CAP_KW - 20.0, unheld
    # During it, each minute's lowest 5-s sample (the first minute, before the battery's
    # first setpoint reached the meter, aside) at most the cap (and a cycle's lag) in export.
    during = meter_kw(store, start, end, "min")
    assert len(during) >= 9, during
    assert min(during[1:]) >= -CAP_KW - LAG_TOLERANCE_KW, during
    assert vtn.bad_exchanges() == []
    # No request refused (the VTN runs without an MQTT notifier here: 501, then polling).
    refused = [(e.method, e.path, e.status) for e in vtn.exchanges if e.status >= 400]
    assert refused == [("GET", "/notifiers", 501)], refused
