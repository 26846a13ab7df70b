"""Every message our VEN sends is valid against the OpenADR 2.0b schema (oadr_20b.xsd, as
openleadr ships it, checked by lxml in openleadr's venv), and our reader takes the VTN's
messages as openleadr writes them."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.openadr2b.vtn_process import XSD_CHECK
from vpp.grid.openadr2b import inbound, wire

T0 = datetime(2026, 7, 15, 6, 0, 0, 250_000, tzinfo=UTC)
OFFER = wire.UsageReportOffer(
    "spec", "site_import", "office-1", timedelta(seconds=5), timedelta(minutes=15)
)
VALUES = [
    wire.ReportValue(T0 + timedelta(seconds=5 * i), timedelta(seconds=5), 300.5 + i)
    for i in range(3)
]
MESSAGES = {
    "registration": wire.create_party_registration(
        "r1", "office-1", ven_id=None, registration_id=None
    ),
    "reregistration": wire.create_party_registration(
        "r1", "office-1", ven_id="v", registration_id="g"
    ),
    "poll": wire.poll("v"),
    "request_event": wire.request_event("r2", "v"),
    "response": wire.response("v", "r3"),
    "created_event": wire.created_event(
        "v",
        [
            wire.EventAnswer("e1", 0, "optIn", "q"),
            wire.EventAnswer("e2", 4, "optOut", "q", 200, "no <flex> & more"),
        ],
    ),
    "register_report": wire.register_report("r4", "v", OFFER, T0),
    "created_report": wire.created_report("v", "r5", ["rr1", "rr2"]),
    "canceled_report": wire.canceled_report("v", "r6", []),
    "update_report": wire.update_report(
        "r7",
        "v",
        report_id="rep",
        report_request_id="rr1",
        specifier_id="spec",
        r_id="site_import",
        values=VALUES,
        created=T0,
    ),
}


def test_every_message_we_send_is_schema_valid(openleadr: Path, tmp_path: Path) -> None:
    files = []
    for name, body in MESSAGES.items():
        f = tmp_path / f"{name}.xml"
        f.write_bytes(body)
        files.append(str(f))
    out = subprocess.run(
        [str(openleadr), str(XSD_CHECK), *files],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(results) == len(MESSAGES)
    assert {Path(r["file"]).stem: r["errors"] for r in results} == {n: [] for n in MESSAGES}


def test_datetimes_are_utc_z_and_durations_rfc5545() -> None:
    assert wire.utc(T0) == "2026-07-15T06:00:00.250000Z"
    assert (
        wire.utc(datetime(2026, 7, 15, 14, 0, tzinfo=UTC).astimezone())
        == "2026-07-15T14:00:00.000000Z"
    )
    cases = {
        timedelta(seconds=5): "PT5S",
        timedelta(minutes=15): "PT15M",
        timedelta(days=1, hours=2): "P1DT2H",
        timedelta(0): "PT0S",
        timedelta(hours=1, seconds=1): "PT1H1S",
    }
    for td, text in cases.items():
        assert wire.duration(td) == text
        assert inbound.parse_duration(text, "x") == td


def test_our_reader_takes_openleadrs_messages(openleadr: Path) -> None:
    script = (
        "from openleadr.messaging import create_message\n"
        "from openleadr import objects\n"
        "from datetime import datetime, timedelta, timezone\n"
        "t = datetime(2027, 7, 15, 6, 0, tzinfo=timezone.utc)\n"
        "ivs = [objects.Interval(dtstart=t, duration=timedelta(minutes=15), signal_payload=2)]\n"
        "ev = objects.Event(event_descriptor=objects.EventDescriptor(event_id='e1',"
        " modification_number=2, market_context='oadr://p', event_status='far',"
        " created_date_time=t, priority=1),"
        " active_period=objects.ActivePeriod(dtstart=t, duration=timedelta(minutes=15)),"
        " event_signals=[objects.EventSignal(intervals=ivs, signal_name='SIMPLE',"
        " signal_type='level', signal_id='s')], targets=[{'ven_id': 'v'}])\n"
        "print(create_message('oadrDistributeEvent', request_id='d1', vtn_id='vtn', events=[ev]))\n"
    )
    xml = subprocess.run(
        [str(openleadr), "-c", script], capture_output=True, timeout=60, check=True
    ).stdout
    d = inbound.distribution(inbound.read(xml))
    assert d.problems == [] and d.request_id == "d1"
    (ev,) = d.events
    assert (ev.event_id, ev.modification, ev.priority, ev.market_context) == (
        "e1",
        2,
        1,
        "oadr://p",
    )
    assert (ev.start, ev.length, ev.status) == (
        datetime(2027, 7, 15, 6, 0, tzinfo=UTC),
        timedelta(minutes=15),
        "far",
    )
    (sig,) = ev.signals
    assert (sig.name, sig.type, [(i.start, i.value) for i in sig.intervals]) == (
        "SIMPLE",
        "level",
        [(datetime(2027, 7, 15, 6, 0, tzinfo=UTC), 2.0)],
    )
