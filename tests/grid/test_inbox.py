"""The grid link's inbox: every valid event triaged as one, junk told apart cheaply; the
event lane served first once junk backs up, arrival order otherwise; each lane bounded,
its oldest dropped and counted."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.grid.helpers import event_dict, interval, payload
from tests.grid.test_parse import MALFORMED
from vpp.grid.inbox import Inbox, InboxLimits, likely_event

VALID = [
    event_dict(),
    event_dict(signal="price", intervals=[interval("2026-07-15T14:00:00Z", "PT1H", -5)]),
    event_dict(cancelled=True, modification=3),
    {k: v for k, v in event_dict().items() if k not in ("priority", "program")},
]


@pytest.mark.parametrize("event", VALID)
def test_every_valid_event_is_triaged_as_one(event: dict[str, object]) -> None:
    assert likely_event(payload(event))
    assert likely_event(json.dumps(event, indent=2, sort_keys=True).encode())


@pytest.mark.parametrize(
    "junk",
    [
        b"{not json",
        b"\xff\xfe garbage",
        b"[1, 2, 3]",
        b'{"v": 2}',
        b"x" * 70_000,
        payload(event_dict(v=2)),
        payload(event_dict(event_id="bad id!")),
        payload(event_dict(modification="1")),
        payload(event_dict(signal="shed")),
        payload(event_dict(intervals=[])),
        payload([event_dict()]),
    ],
)
def test_junk_is_not_triaged_as_an_event(junk: bytes) -> None:
    assert not likely_event(junk)


def test_triage_never_calls_a_malformed_kind_with_missing_keys_an_event() -> None:
    # Of the parser's malformed kinds, those without an event's required keys are junk.
    for _kind, data, *_ in MALFORMED:
        if b'"event_id"' not in data or b'"intervals"' not in data:
            assert not likely_event(data)


def _get_all(inbox: Inbox) -> list[bytes]:
    async def drain() -> list[bytes]:
        return [(await inbox.get()).payload for _ in range(len(inbox))]

    return asyncio.run(drain())


def test_arrival_order_while_little_waits() -> None:
    inbox = Inbox(InboxLimits(fifo_other=16))
    event = payload(event_dict())
    for data in (b"junk-1", event, b"junk-2"):
        inbox.put(data, "t")
    assert _get_all(inbox) == [b"junk-1", event, b"junk-2"]


def test_events_first_once_junk_backs_up() -> None:
    inbox = Inbox(InboxLimits(fifo_other=16))
    event = payload(event_dict())
    for i in range(100):
        inbox.put(f"junk-{i}".encode(), "t")
    inbox.put(event, "t")
    got = _get_all(inbox)
    assert got[0] == event
    # The rest in arrival order, events again first whenever junk backs up beyond 16.
    assert got[1:] == [f"junk-{i}".encode() for i in range(100)]


def test_a_full_lane_drops_its_oldest_and_the_next_message_counts_them() -> None:
    inbox = Inbox(InboxLimits(events=4, other=10, fifo_other=0))
    event = payload(event_dict())
    for i in range(1000):
        inbox.put(f"junk-{i}".encode(), "t")
    inbox.put(event, "t")
    assert len(inbox) == 11

    async def first_two() -> list[tuple[bytes, int, bool]]:
        out = []
        for _ in range(2):
            m = await inbox.get()
            out.append((m.payload, m.dropped, m.likely_event))
        return out

    assert asyncio.run(first_two()) == [(event, 990, True), (b"junk-990", 0, False)]
    assert inbox.dropped_total == 990


def test_a_lane_is_bounded_in_bytes() -> None:
    inbox = Inbox(InboxLimits(other=1000, bytes_per_lane=10_000))
    for _ in range(100):
        inbox.put(b"x" * 1000, "t")
    assert len(inbox) == 10
    assert inbox.dropped_total == 90
