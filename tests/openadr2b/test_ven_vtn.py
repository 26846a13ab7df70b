"""Our 2.0b VEN (vpp.grid.openadr2b.link) against openleadr 0.5.36's real VTN in its own
process: registration with the venID the VTN assigns, the TELEMETRY_USAGE report it asks
for in its oadrRegisteredReport (values per granularity, its reportRequestID and rID, UTC
`Z` datetimes: openleadr drops anything else), events as native contract events (a
modification, a cancel), and optIn/optOut with the reason in the eventResponse."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.clock import WallClock
from tests.openadr2b.vtn_process import Vtn, running_vtn
from vpp.grid.messages import Event, Response
from vpp.grid.openadr2b.link import Oadr2bLink
from vpp.grid.parse import parse_event
from vpp.site import OpenAdr2bConfig


def _answer(status: str, event: Event, reason: str | None = None) -> Response:
    return Response(
        event_id=event.event_id,
        modification=event.modification,
        status=status,  # type: ignore[arg-type]
        reason=reason,
        ts=datetime.now(UTC),
    )


async def _next_event(link: Oadr2bLink) -> Event:
    msg = await asyncio.wait_for(link.receive(), 15)
    event = parse_event(msg.payload, datetime.now(UTC))
    assert isinstance(event, Event), event
    return event


@contextlib.asynccontextmanager
async def _ven(vtn: Vtn, **kw: object) -> AsyncIterator[Oadr2bLink]:
    cfg = OpenAdr2bConfig(vtn_url=vtn.url, ven_name="office-1", **kw)  # type: ignore[arg-type]
    link = Oadr2bLink(cfg, "office-1", WallClock(), levels={1: 50.0, 2: 100.0})

    async def telemetry() -> None:
        for i in range(10_000):  # bounded: the test ends it long before
            link.send_telemetry({"ts": datetime.now(UTC).isoformat(), "site_import_kw": 300 + i})
            await asyncio.sleep(0.5)

    tasks = [asyncio.create_task(link.run()), asyncio.create_task(telemetry())]
    try:
        yield link
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await link.close()


@pytest.mark.timeout(90)
async def test_registers_reports_and_answers_events(openleadr: Path) -> None:
    async with (
        running_vtn(openleadr, poll_s=1, granularity_s=2, back_s=4) as vtn,
        _ven(vtn) as link,
    ):
        (reg,) = await vtn.until(lambda: vtn.of("registered"), 20, "registration")
        await asyncio.wait_for(link.registered.wait(), 20)
        assert link.ven_id == reg["ven_id"] and reg["ven_name"] == "office-1"
        assert link.poll_s == 1  # the VTN's oadrRequestedOadrPollFreq: the site file names none
        (offer,) = vtn.of("report_offer")
        assert (offer["unit"], offer["scale"], offer["resource_id"]) == ("W", "k", "office-1")

        # A curtailment of 40 kW in two intervals, a minute from now.
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
        vtn.send(
            cmd="add_event", ven_name="office-1", signal_name="LOAD_DISPATCH",
            signal_type="delta", event_id="shed-1",
            intervals=[
                {"start": start.isoformat(), "duration_s": 900, "value": 40},
                {"start": (start + timedelta(minutes=15)).isoformat(), "duration_s": 900,
                 "value": 30},
            ],
        )  # fmt: skip
        event = await _next_event(link)
        assert (event.event_id, event.modification, event.signal) == (
            "oadr2b-shed-1",
            0,
            "curtail_kw",
        )
        assert [(iv.start, iv.value) for iv in event.intervals] == [
            (start, 40.0),
            (start + timedelta(minutes=15), 30.0),
        ]
        assert event.program == "oadr://test" and not event.cancelled
        link.send_response(_answer("received", event))  # no 2.0b message for it
        link.send_response(_answer("opt_in", event))
        opt = await vtn.until(lambda: vtn.of("created_event"), 10, "optIn")
        assert [(o["event_id"], o["modification"], o["opt_type"]) for o in opt] == [
            ("shed-1", 0, "optIn")
        ]
        assert vtn.of("opt_callback")[0]["opt_type"] == "optIn"

        # A modification: the agent opts out, and the VTN reads why.
        vtn.send(
            cmd="modify", ven_name="office-1", event_id="shed-1",
            intervals=[{"start": start.isoformat(), "duration_s": 900, "value": 900}],
        )  # fmt: skip
        modified = await _next_event(link)
        assert (modified.modification, [iv.value for iv in modified.intervals]) == (1, [900.0])
        link.send_response(_answer("opt_out", modified, "no flexibility left for 900 kW"))
        await vtn.until(lambda: len(vtn.of("created_event")) >= 2, 10, "optOut")
        out = vtn.of("created_event")[1]
        assert (out["modification"], out["opt_type"]) == (1, "optOut")
        assert out["description"] == "no flexibility left for 900 kW"

        # The cancel: a native cancel, acknowledged with optIn for its modification.
        vtn.send(cmd="cancel", ven_name="office-1", event_id="shed-1")
        cancel = await _next_event(link)
        assert (cancel.cancelled, cancel.modification) == (True, 2)
        link.send_response(_answer("cancelled", cancel))
        await vtn.until(lambda: len(vtn.of("created_event")) >= 3, 10, "cancel acknowledged")
        assert vtn.of("created_event")[2]["modification"] == 2

        # Reports: every 4 s, one value per 2 s, each the site import of its interval.
        await vtn.until(lambda: len(vtn.of("report")) >= 3, 20, "three updates")
        values = [v for r in vtn.of("report") for v in r["values"]]
        starts = [datetime.fromisoformat(t) for t, _ in values]
        assert all(b - a == timedelta(seconds=2) for a, b in itertools.pairwise(starts))
        assert all(300 <= v < 300 + 200 for _, v in values)
        assert [v for _, v in values] == sorted(v for _, v in values)  # the feed only rises
        assert link.vtn_errors == 0  # every message we sent passed the VTN's schema check
    assert not [w for w in vtn.of("warning") if "valid" in w["message"].lower()], vtn.of("warning")
