"""The test VTN proved with third-party OpenADR 3 clients from PyPI: `openadr3` 0.5 (the
business logic creating a program and an event; a VEN creating its VEN object and resource,
reading events into its entity models, posting a report) and `toadr3` (a VEN getting its
OAuth2 token, listing programs and events into its models, posting a report). Every body
either way is valid against openadr3.yaml. (`openadr3-client` needs Python 3.12: not here.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import openadr3
import toadr3

from tests.oadr3_vtn.app import Vtn
from tests.oadr3_vtn.server import BL_CLIENT, VEN_CLIENT, serve

START = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)


def _event_body(program_id: str) -> dict[str, Any]:
    return {
        "programID": program_id,
        "eventName": "cap-1",
        "intervalPeriod": {"start": START.isoformat(), "duration": "PT15M"},
        "payloadDescriptors": [
            {
                "objectType": "EVENT_PAYLOAD_DESCRIPTOR",
                "payloadType": "IMPORT_CAPACITY_LIMIT",
                "units": "KW",
            }
        ],
        "reportDescriptors": [{"payloadType": "USAGE", "units": "KWH"}],
        "intervals": [
            {"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [100.0]}]}
        ],
    }


def _report_body(event_id: str, program_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "eventID": event_id,
        "clientName": "third-party-ven",
        "resources": [
            {
                "resourceName": "meter-1",
                "intervals": [
                    {
                        "id": 0,
                        "intervalPeriod": {"start": START.isoformat(), "duration": "PT15M"},
                        "payloads": [{"type": "USAGE", "values": [21.5]}],
                    }
                ],
            }
        ],
    }
    if program_id:
        body["programID"] = program_id  # toadr3 speaks 3.0.1, which has it; 3.1.0 allows it
    return body


def _bl(vtn: Vtn) -> str:
    """A program and an event created by openadr3's business-logic client; the event id."""
    bl = openadr3.OpenADRClient(vtn.base_url, client_type="bl", scopes=openadr3.BL_SCOPES)
    bl.fetch_token(*BL_CLIENT)
    with bl:
        created = bl.create_program({"programName": "third-party"})
        assert created.status_code == 201, created.text
        program_id = created.json()["id"]
        ev = bl.create_event(_event_body(program_id))
        assert ev.status_code == 201, ev.text
        return str(ev.json()["id"])


def test_openadr3_client_as_business_logic_and_ven() -> None:
    with serve() as vtn:
        event_id = _bl(vtn)
        ven = openadr3.OpenADRClient(vtn.base_url, client_type="ven", scopes=openadr3.VEN_SCOPES)
        ven.fetch_token(*VEN_CLIENT)  # discovers the token URL through /auth/server
        with ven:
            made = ven.create_ven({"objectType": "VEN_VEN_REQUEST", "venName": "third-party-ven"})
            assert made.status_code == 201, made.text
            ven_id = made.json()["id"]
            res = ven.create_resource(
                {"objectType": "VEN_RESOURCE_REQUEST", "resourceName": "meter-1", "venID": ven_id}
            )
            assert res.status_code == 201, res.text
            assert [r.id for r in ven.resources(venID=ven_id)] == [res.json()["id"]]
            (found,) = ven.vens(venName="third-party-ven")
            assert isinstance(found, openadr3.Ven) and found.id == ven_id
            (event,) = ven.events(limit=50)
            assert isinstance(event, openadr3.Event) and event.id == event_id
            assert event.intervals[0].payloads[0].values == [100.0]
            posted = ven.create_report(_report_body(event_id))
            assert posted.status_code == 201, posted.text
            (report,) = ven.reports(eventID=event_id)
            assert isinstance(report, openadr3.Report) and report.client_name == "third-party-ven"
            # The business logic may not post reports; a VEN may not create events.
            assert ven.create_event(_event_body("program-1")).status_code == 403
            # Bad input is a 400 problem, not a crash.
            bad = ven.create_report({"eventID": event_id})
            assert bad.status_code == 400 and "clientName" in bad.json()["detail"]
            assert ven.get_events(limit=51).status_code == 400
    # The only invalid body was the one sent on purpose.
    assert [e.body for e in vtn.bad_exchanges()] == [{"eventID": event_id}]
    assert all(not e.response_problems for e in vtn.exchanges)


async def test_toadr3_client_as_ven() -> None:
    with serve() as vtn:
        event_id = _bl(vtn)
        oauth = toadr3.OAuthScopeConfig(
            token_url=f"{vtn.base_url}/auth/token",
            grant_type="client_credentials",
            scope="read_all write_reports",
            client_id=VEN_CLIENT[0],
            client_secret=VEN_CLIENT[1],
        )
        async with aiohttp.ClientSession() as session:
            client = toadr3.ToadrClient(vtn.base_url, oauth, session=session)
            programs = await client.get_programs(limit=50)
            assert [p.program_name for p in programs] == ["third-party"]
            (event,) = await client.get_events(program_id=programs[0].id, limit=50)
            assert event.id == event_id
            assert event.intervals[0].payloads[0].values == [100.0]
            token = await client.token
            report = toadr3.models.Report.model_validate(_report_body(event_id, programs[0].id))
            posted = await toadr3.post_report(session, vtn.base_url, token, report)
            assert posted.id is not None and posted.event_id == event_id
            reports = await toadr3.get_reports(session, vtn.base_url, token, event_id=event_id)
            assert [r.id for r in reports] == [posted.id]
    assert vtn.bad_exchanges() == []
