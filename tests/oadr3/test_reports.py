"""The agent's reports as OpenADR 3.1 reports (vpp.grid.oadr3.reports): what each descriptor
asks, in its units, valid against openadr3.yaml's reportRequest; and through the link: the
expected shed on opt-in, and a report the VTN refused posted after a restart."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from devices.clock import VirtualClock
from tests.grid.helpers import NOW
from tests.grid.live import advance_until
from tests.oadr3.live import oadr3_site, program
from tests.oadr3.test_ven_link import running
from tests.oadr3_vtn import spec
from tests.oadr3_vtn.server import BL_CLIENT, serve
from vpp.grid.messages import Response
from vpp.grid.oadr3.link import Oadr3Link
from vpp.grid.oadr3.reports import report_body
from vpp.grid.oadr3.wire import ReportDescriptor
from vpp.store.store import Store

INTERVALS = [
    {
        "start": "2026-07-15T07:00:00+00:00",
        "duration": "PT15M",
        "actual_kw": 80.0,
        "baseline_kw": 120.0,
    },
    {
        "start": "2026-07-15T07:15:00+00:00",
        "duration": "PT30M",
        "actual_kw": -5.0,
        "baseline_kw": None,
    },
]


def _body(descriptors: list[dict[str, Any]]) -> dict[str, Any] | None:
    return report_body(
        event_id="ev-1",
        client_name="office-1",
        resource_name="site-1",
        report_name="ev-1 final",
        descriptors=[ReportDescriptor.model_validate(d) for d in descriptors],
        intervals=INTERVALS,
        interval_ids=[3, 4],
    )


@pytest.mark.parametrize(
    ("descriptor", "units", "values"),
    [
        ({"payloadType": "USAGE"}, "KWH", [20.0, 0.0]),  # 80 kW over 15 min; export is 0
        ({"payloadType": "USAGE", "units": "KW"}, "KW", [80.0, 0.0]),
        ({"payloadType": "DEMAND"}, "KW", [80.0, 0.0]),
        ({"payloadType": "DEMAND", "units": "kwh"}, "KWH", [20.0, 0.0]),
        ({"payloadType": "BASELINE", "readingType": "ESTIMATED"}, "KW", [120.0, None]),
        ({"payloadType": "BASELINE", "units": "KWH"}, "KWH", [30.0, None]),
        ({"payloadType": "DELTA_USAGE"}, "KW", [-40.0, None]),
    ],
)
def test_each_descriptor_in_its_units(
    descriptor: dict[str, Any], units: str, values: list[float | None]
) -> None:
    body = _body([descriptor])
    assert body is not None
    assert spec.requests().problems("reportRequest", body) == []
    (desc,) = body["payloadDescriptors"]
    assert (desc["payloadType"], desc["units"]) == (descriptor["payloadType"], units)
    assert desc.get("readingType") == descriptor.get("readingType")
    (resource,) = body["resources"]
    assert resource["resourceName"] == "site-1"
    assert [iv["id"] for iv in resource["intervals"]] == [3, 4]
    got = [
        iv["payloads"][0]["values"][0] if iv["payloads"] else None for iv in resource["intervals"]
    ]
    assert got == values
    assert "programID" not in body and body["clientName"] == "office-1"


def test_nothing_reportable_is_no_report() -> None:
    assert _body([{"payloadType": "OPERATING_STATE"}]) is None


@pytest.mark.timeout(60)
async def test_opt_in_posts_the_expected_shed_and_refused_reports_wait_across_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    with serve() as vtn:
        site = oadr3_site(vtn, monkeypatch, poll_s=2)
        store = Store(tmp_path / "s.sqlite")
        prog = program(vtn)
        start = NOW + timedelta(hours=1)
        ev = vtn.create(
            "events",
            {
                "programID": prog["id"],
                "intervalPeriod": {"start": start.isoformat(), "duration": "PT15M"},
                "reportDescriptors": [
                    {"payloadType": "LOAD_SHED_DELTA_AVAILABLE"},
                    {"payloadType": "DEMAND", "units": "KW"},
                ],
                "intervals": [
                    {"id": i, "payloads": [{"type": "DISPATCH_SETPOINT_RELATIVE", "values": [25]}]}
                    for i in (7, 8)
                ],
            },
            BL_CLIENT[0],
        )
        native = f"oadr3.{ev['id']}"
        link = Oadr3Link(site, clock, store)
        async with running(link):
            await advance_until(clock, lambda: ev["id"] in link.state.events, 30)
            json.loads((await link.receive()).payload)
            link.send_response(
                Response(
                    event_id=native,
                    modification=0,
                    status="opt_in",
                    expected_kw=[25.0, 22.5],
                    ts=NOW,
                )
            )
            await advance_until(clock, lambda: len(vtn.objects["reports"]) == 1, 30)
            (flex,) = vtn.objects["reports"].values()
            values = [iv["payloads"][0]["values"] for iv in flex["resources"][0]["intervals"]]
            assert values == [[-25.0], [-22.5]]
            assert flex["payloadDescriptors"][0]["payloadType"] == "LOAD_SHED_DELTA_AVAILABLE"
            # The VTN refuses reports for a while: the report waits (in the store).
            vtn.faults = {"/reports": "500"}
            report = {
                "event_id": native,
                "modification": 0,
                "final": False,
                "intervals": [
                    {
                        "start": start.isoformat(),
                        "duration": "PT15M",
                        "actual_kw": 70.0,
                        "baseline_kw": 95.0,
                    }
                ],
            }
            link.send_report(report)
            link.send_report(report)  # the same intervals again: nothing new
            before = link.failures
            await advance_until(clock, lambda: link.failures > before, 30)
        assert len(link.state.pending) == 1
        vtn.faults = {}
        again = Oadr3Link(site, clock, store)
        async with running(again):
            await advance_until(clock, lambda: len(vtn.objects["reports"]) == 2, 60)
            await advance_until(clock, lambda: again.polls >= 2, 30)
        assert again.state.pending == []
        assert len(vtn.objects["reports"]) == 2  # posted once
        store.close()
    assert vtn.bad_exchanges() == []
