"""A hostile or broken VTN never ends the VEN: HTTP errors, hangs, dropped connections,
non-XML, XML bombs and external entities, wrong message types, refused or id-less
registrations, events with wrong types. Each failure is one log line and a retry with
backoff; an event we cannot read is opted out of (code 400) while the others are handed
on. The VTN is a real HTTP server on loopback (tests/openadr2b/hostile.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from devices.clock import WallClock
from tests.openadr2b import hostile as h
from vpp.grid.messages import Response
from vpp.grid.openadr2b.link import Oadr2bLink
from vpp.site import OpenAdr2bConfig

BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    "<oadrPayload>&lol3;</oadrPayload>"
)
EXTERNAL = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    "<oadrPayload>&e;</oadrPayload>"
)
BAD_REGISTRATIONS = [
    h.Answer(500, b"internal error"),
    h.Answer(404, b"not here"),
    h.Answer(200, b""),
    h.Answer(200, b"not xml at all <"),
    h.Answer(200, BOMB),
    h.Answer(200, EXTERNAL),
    h.Answer(200, b"<html><body>proxy login</body></html>"),
    h.Answer(200, h.ok_response()),  # a wrong message type
    h.Answer(200, h.registered(ven_id="")),  # no venID: refused
    h.Answer(200, h.registered(poll="soon")),  # a poll frequency that is no duration
    h.Answer(200, b"<oadrPayload>" + b"x" * (2 << 20) + b"</oadrPayload>"),
    h.Answer(200, h.HANG),
    h.Answer(200, h.DROP),
]


@pytest.mark.timeout(60)
async def test_a_hostile_vtn_is_retried_and_its_bad_events_opted_out() -> None:
    vtn = h.HostileVtn(
        fallback=h.Answer(200, h.ok_response()),
        fallbacks={
            "EiRegisterParty": h.Answer(200, h.registered()),
            "EiReport": h.Answer(200, h.registered_report()),
        },
    )
    vtn.then("EiRegisterParty", *BAD_REGISTRATIONS, h.Answer(200, h.registered()))
    # The first poll asks us to register again.
    vtn.then("OadrPoll", h.Answer(200, h.reregistration()))
    start = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    vtn.then(
        "EiEvent",
        h.Answer(
            200,
            h.distribute(
                h.event_xml("bad-mod", "one", start, "10"),
                h.event_xml("bad-value", "0", start, "NaN"),
                h.event_xml("bad-start", "0", start.rstrip("Z"), "10"),
                h.event_xml("good", "0", start, "25"),
            ),
        ),
        h.Answer(500, b"the first answer fails"),
    )
    async with vtn.running():
        cfg = OpenAdr2bConfig(vtn_url=vtn.url, ven_name="office-1", poll_s=0.2)
        link = Oadr2bLink(
            cfg, "office-1", WallClock(), levels={}, backoff_min_s=0.01, backoff_max_s=0.05,
            timeout_s=0.5,
        )  # fmt: skip
        with structlog.testing.capture_logs() as logs:
            run = asyncio.create_task(link.run())
            try:
                msg = await asyncio.wait_for(link.receive(), 30)
                good = json.loads(msg.payload)
                assert (good["event_id"], good["intervals"][0]["value"]) == ("oadr2b-good", 25.0)
                # The unreadable ones were opted out of, the first answer retried after a 500.
                for _ in range(200):  # bounded: 10 s
                    if len([s for s, b in vtn.requests if s == "EiEvent" and b"optOut" in b]) >= 2:
                        break
                    await asyncio.sleep(0.05)
                assert len([s for s, b in vtn.requests if s == "EiEvent" and b"optOut" in b]) >= 2
                for _ in range(200):  # bounded: 10 s
                    if [s for s, _ in vtn.requests].count("EiRegisterParty") > len(
                        BAD_REGISTRATIONS
                    ) + 1:
                        break
                    await asyncio.sleep(0.05)
                assert not run.done()
            finally:
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run
                await link.close()
    assert link.ven_id == "ven-h"
    errors = [e for e in logs if e["event"] == "openadr2b_vtn_error"]
    assert len(errors) == link.vtn_errors == len(BAD_REGISTRATIONS) + 1, errors
    assert all("\n" not in e["error"] and len(e["error"]) <= 300 for e in errors)
    answered = [b for s, b in vtn.requests if s == "EiEvent" and b"optOut" in b][-1].decode()
    # Opted out of where the ids could be read (bad-mod's modificationNumber cannot).
    assert "bad-value" in answered and "bad-start" in answered and "bad-mod" not in answered
    assert "<ei:responseCode>400</ei:responseCode>" in answered
    assert [e for e in logs if e["event"] == "openadr2b_event_unreadable"]
    # Registered again when asked, with the venID it had.
    assert [e for e in logs if e["event"] == "openadr2b_reregister"]
    again = [b for s, b in vtn.requests if s == "EiRegisterParty"][len(BAD_REGISTRATIONS) + 1]
    assert b"<ei:venID>ven-h</ei:venID>" in again and b"reg-h" in again


@pytest.mark.timeout(30)
async def test_an_event_missing_from_a_later_distribution_is_cancelled() -> None:
    start = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    vtn = h.HostileVtn(
        fallback=h.Answer(200, h.ok_response()),
        fallbacks={
            "EiRegisterParty": h.Answer(200, h.registered()),
            "EiReport": h.Answer(200, h.registered_report()),
        },
    )
    both = h.distribute(h.event_xml("a", "0", start, "10"), h.event_xml("b", "4", start, "20"))
    vtn.then("EiEvent", h.Answer(200, both))
    # A later poll brings the whole list again, without b; then a itself, unchanged.
    vtn.then(
        "OadrPoll",
        h.Answer(200, h.ok_response()),
        h.Answer(200, h.distribute(h.event_xml("a", "0", start, "10"))),
    )
    async with vtn.running():
        cfg = OpenAdr2bConfig(vtn_url=vtn.url, ven_name="office-1", poll_s=0.2)
        link = Oadr2bLink(cfg, "office-1", WallClock(), levels={})
        run = asyncio.create_task(link.run())
        try:
            got = [
                json.loads((await asyncio.wait_for(link.receive(), 10)).payload) for _ in range(3)
            ]
            # The agent's `cancelled` for it has no 2.0b answer: the VTN has no such event.
            cancelled = Response(
                event_id="oadr2b-b", modification=5, status="cancelled", ts=datetime.now(UTC)
            )
            link.send_response(cancelled)
            assert not link._answers
        finally:
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
            await link.close()
    assert [(g["event_id"], g["modification"], g.get("cancelled", False)) for g in got] == [
        ("oadr2b-a", 0, False),
        ("oadr2b-b", 4, False),
        ("oadr2b-b", 5, True),
    ]
    assert link._inbox.empty()  # a, unchanged, is not handed on again
