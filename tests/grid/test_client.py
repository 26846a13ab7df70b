"""send_event round trips through a real Mosquitto to a small site peer that answers per
contract (parse_event + ledger), and build_event from CLI-style arguments."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from itertools import count

import aiomqtt
import pytest

from devices.clock import VirtualClock, WallClock
from tests.conftest import Broker
from tests.grid.helpers import NOW, event_dict
from vpp.grid.client import build_event, send_event, uneven_split
from vpp.grid.ledger import EventState, decide, opted_in, opted_out
from vpp.grid.messages import Event, Response
from vpp.grid.parse import Rejection, parse_event
from vpp.grid.topics import SiteTopics

_site_ids = count()
OPT_OUT_ABOVE_KW = 1000.0
"""The test site has this much flexibility; larger requests are opted out of."""


async def _site_peer(broker: Broker, topics: SiteTopics, ready: asyncio.Event) -> None:
    """A minimal site: validates, decides, answers received then opt_in / opt_out."""
    clock = WallClock()
    known: dict[str, EventState] = {}
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"peer-{topics.site_id}") as c:
        await c.subscribe(topics.events.name, qos=1)
        ready.set()
        async for msg in c.messages:
            assert isinstance(msg.payload, bytes)
            result = parse_event(msg.payload, clock.now())
            if isinstance(result, Rejection):
                await c.publish(topics.responses.name, result.response.to_json(), qos=1)
                continue
            d = decide(known, result, clock.now())
            if d.state is not None:
                known[result.event_id] = d.state
            for r in d.responses:
                await c.publish(topics.responses.name, r.to_json(), qos=1)
            if d.plan and d.state is not None:
                values = [iv.value for iv in result.intervals]
                if max(values) > OPT_OUT_ABOVE_KW:
                    state, r = opted_out(d.state, "no flexibility left", clock.now())
                else:
                    state, r = opted_in(d.state, values, clock.now())
                known[result.event_id] = state
                await c.publish(topics.responses.name, r.to_json(), qos=1)


@pytest.fixture
async def site(mosquitto: Broker) -> AsyncIterator[SiteTopics]:
    topics = SiteTopics("vpp", f"site{next(_site_ids)}")
    ready = asyncio.Event()
    task = asyncio.create_task(_site_peer(mosquitto, topics, ready))
    await asyncio.wait_for(ready.wait(), 10)
    yield topics
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _event(**kw: object) -> Event:
    now = WallClock().now()
    return build_event(
        now=now, start=now + timedelta(minutes=10), duration="PT1H", interval="PT30M", **kw
    )  # type: ignore[arg-type]


async def _send(broker: Broker, site: SiteTopics, event: object, wait_s: float) -> list[Response]:
    return await send_event(
        event,  # type: ignore[arg-type]
        host=broker.host,
        port=broker.port,
        site_id=site.site_id,
        clock=WallClock(),
        wait_s=wait_s,
    )


async def test_new_event_is_received_then_opted_in(mosquitto: Broker, site: SiteTopics) -> None:
    ev = _event(curtail_kw=120.0, event_id="rt-1")
    t0 = time.monotonic()
    rs = await _send(mosquitto, site, ev, wait_s=1.0)
    assert [r.status for r in rs] == ["received", "opt_in"]
    assert rs[1].expected_kw == [120.0, 120.0]
    assert all((r.event_id, r.modification) == ("rt-1", 0) for r in rs)
    assert time.monotonic() - t0 >= 0.9  # opt_in is not final: waited the full wait_s


async def test_opt_out_ends_collection_early(mosquitto: Broker, site: SiteTopics) -> None:
    ev = _event(curtail_kw=5000.0, event_id="rt-2")
    t0 = time.monotonic()
    rs = await _send(mosquitto, site, ev, wait_s=10.0)
    assert [r.status for r in rs] == ["received", "opt_out"]
    assert rs[1].reason == "no flexibility left"
    assert time.monotonic() - t0 < 5.0


async def test_invalid_dict_is_rejected_with_field_errors(
    mosquitto: Broker, site: SiteTopics
) -> None:
    bad = event_dict(event_id="rt-3")
    bad["intervals"][0]["duration"] = "30 minutes"
    rs = await _send(mosquitto, site, bad, wait_s=10.0)
    assert [r.status for r in rs] == ["rejected"]
    assert rs[0].event_id == "rt-3"
    assert [e.loc for e in rs[0].errors] == ["intervals[0].duration"]


async def test_unreadable_bytes_get_a_rejection_without_event_id(
    mosquitto: Broker, site: SiteTopics
) -> None:
    rs = await _send(mosquitto, site, b"\x00not json", wait_s=10.0)
    assert [(r.status, r.event_id) for r in rs] == [("rejected", None)]


async def test_duplicate_stale_and_cancel(mosquitto: Broker, site: SiteTopics) -> None:
    v1 = _event(cap_kw=300.0, event_id="rt-4", modification=1)
    assert [r.status for r in await _send(mosquitto, site, v1, 0.5)] == ["received", "opt_in"]
    # The same modification again: current status once more, nothing re-planned.
    assert [r.status for r in await _send(mosquitto, site, v1, 0.5)] == ["opt_in"]
    stale = _event(cap_kw=300.0, event_id="rt-4", modification=0)
    rs = await _send(mosquitto, site, stale, 5.0)
    assert [(r.status, r.modification) for r in rs] == [("rejected", 0)]
    assert rs[0].errors[0].loc == "modification"
    cancel = build_event(now=WallClock().now(), cancel=True, event_id="rt-4", modification=2)
    assert [r.status for r in await _send(mosquitto, site, cancel, 5.0)] == ["cancelled"]


async def test_unknown_cancel_is_answered_cancelled(mosquitto: Broker, site: SiteTopics) -> None:
    cancel = build_event(now=WallClock().now(), cancel=True, event_id="never-seen")
    rs = await _send(mosquitto, site, cancel, 5.0)
    assert [(r.status, r.errors) for r in rs] == [("cancelled", [])]


async def test_no_site_no_responses(mosquitto: Broker) -> None:
    nobody = SiteTopics("vpp", "absent-site")
    t0 = time.monotonic()
    rs = await _send(mosquitto, nobody, _event(curtail_kw=1.0), wait_s=0.3)
    assert rs == []
    assert 0.25 <= time.monotonic() - t0 < 3.0


def test_build_event_splits_duration_into_intervals() -> None:
    ev = build_event(
        now=NOW,
        curtail_kw=75.0,
        start="2026-07-15T14:00:00+08:00",
        duration="PT1H10M",
        interval="PT30M",
        priority=2,
        program="summer",
        event_id="b-1",
    )
    assert [iv.duration for iv in ev.intervals] == [
        timedelta(minutes=30),
        timedelta(minutes=30),
        timedelta(minutes=10),
    ]
    assert [iv.start for iv in ev.intervals][1] - ev.start == timedelta(minutes=30)
    assert (ev.signal, ev.priority, ev.program, ev.event_id) == ("curtail_kw", 2, "summer", "b-1")
    assert {iv.value for iv in ev.intervals} == {75.0}


def test_build_event_cap_and_price_and_generated_id() -> None:
    cap = build_event(now=NOW, cap_kw=200, duration="PT2H")
    assert cap.signal == "import_cap_kw" and cap.start == NOW and len(cap.intervals) == 1
    assert cap.event_id.startswith("evt-20260715T060000-")
    other = build_event(now=NOW, cap_kw=200, duration="PT2H")
    assert other.event_id != cap.event_id
    price = build_event(now=NOW, price=-3.5, duration="PT15M", test=True)
    assert (price.signal, price.test, price.intervals[0].value) == ("price", True, -3.5)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"duration": "PT1H"}, "exactly one"),
        ({"curtail_kw": 1, "cap_kw": 2, "duration": "PT1H"}, "exactly one"),
        ({"curtail_kw": 1}, "duration"),
        ({"curtail_kw": 1, "duration": "1 hour"}, "duration: .*ISO 8601"),
        ({"curtail_kw": 1, "duration": "PT1H", "start": "14:00"}, "start: .*RFC 3339"),
        ({"curtail_kw": 1, "duration": "PT1H", "interval": "15m"}, "interval: "),
        ({"curtail_kw": -1, "duration": "PT1H"}, "intervals[0].value"),
        ({"curtail_kw": 1, "duration": "P1D", "interval": "PT1M"}, "288"),
        ({"curtail_kw": 1, "duration": "PT1H", "start": "2026-08-01T00:00:00Z"}, "7 days"),
        ({"curtail_kw": 1, "duration": "PT1H", "event_id": "a b"}, "event_id"),
    ],
)
def test_build_event_rejects_bad_arguments(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        build_event(now=NOW, **kwargs)  # type: ignore[arg-type]


async def test_virtual_clock_waits_for_the_first_answer(
    mosquitto: Broker, site: SiteTopics
) -> None:
    clock = VirtualClock(max_hold_wall_s=2.0)
    bad = event_dict(event_id="rt-v1", v=2)
    t0 = time.monotonic()
    rs = await send_event(
        bad,
        host=mosquitto.host,
        port=mosquitto.port,
        site_id=site.site_id,
        clock=clock,
        wait_s=3600,
    )
    assert [(r.status, r.errors[0].loc) for r in rs] == [("rejected", "v")]
    assert clock.monotonic() < 3600  # answered before the virtual deadline
    assert time.monotonic() - t0 < 2.0


async def test_virtual_clock_leaps_over_a_silent_wait(mosquitto: Broker) -> None:
    clock = VirtualClock(max_hold_wall_s=0.3)
    t0 = time.monotonic()
    rs = await send_event(
        _event(curtail_kw=1.0),
        host=mosquitto.host,
        port=mosquitto.port,
        site_id="nobody-here",
        clock=clock,
        wait_s=3600,
    )
    assert rs == []
    assert clock.monotonic() >= 3600
    assert time.monotonic() - t0 < 3.0


def test_build_event_refuses_an_event_that_has_ended_but_not_one_that_has_begun() -> None:
    with pytest.raises(ValueError, match=r"^start: the event would end at 2020-01-01T01:00:00"):
        build_event(now=NOW, curtail_kw=5, start="2020-01-01T00:00:00Z", duration="PT1H")
    begun = build_event(now=NOW, curtail_kw=5, start="2026-07-15T05:30:00Z", duration="PT1H")
    assert begun.start < NOW < begun.end


def test_uneven_split_says_what_the_last_interval_is() -> None:
    note = uneven_split("PT2H", "PT7M")
    assert note == (
        "interval PT7M does not divide duration PT2H: 17 intervals of PT7M, then one of PT1M"
    )
    ev = build_event(now=NOW, curtail_kw=5, duration="PT2H", interval="PT7M")
    assert len(ev.intervals) == 18 and ev.intervals[-1].duration == timedelta(minutes=1)
    assert uneven_split("PT2H", "PT15M") is None and uneven_split("PT2H", None) is None
