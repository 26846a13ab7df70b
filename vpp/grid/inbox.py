"""The grid link's inbox: bounded, and valid-looking events first.

A flood of junk on the events topic must neither delay a valid event's `received` nor grow
memory. So each message is triaged on arrival by a cheap check (`likely_event`: the
event's required keys with plausible values; the real check stays in vpp.grid.parse) into
one of two lanes. `get()` serves messages in arrival order while little waits, and the
event lane first once the other lane backs up (`InboxLimits.fifo_other`). Each lane is
bounded in messages and bytes; a full lane drops its oldest message, and the next message
handed out counts the drops (`InboundGridMessage.dropped`) so that the grid can be told.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, get_args

from vpp.grid.link import InboundGridMessage
from vpp.grid.types import CONTRACT_VERSION, ID_PATTERN, MAX_MESSAGE_BYTES, Signal

_SIGNALS = frozenset(get_args(Signal))
_ID = re.compile(ID_PATTERN)


def likely_event(payload: bytes) -> bool:
    """True when `payload` may be a valid event: at most 64 KiB, its required keys written
    plainly (as any JSON encoder writes them), `v` 1, a valid `event_id`, an integer
    `modification`, a known `signal` and a non-empty list of `intervals`. Every valid event
    passes; most junk is told apart in microseconds (a substring test before any parsing)."""
    if (
        len(payload) > MAX_MESSAGE_BYTES
        or b'"intervals"' not in payload
        or b'"event_id"' not in payload
        or b'"signal"' not in payload
        or b'"modification"' not in payload
    ):
        return False
    try:
        obj: Any = json.loads(payload)
    except Exception:  # not JSON, not UTF-8, too deep: junk
        return False
    if not isinstance(obj, dict):
        return False
    eid, intervals = obj.get("event_id"), obj.get("intervals")
    return (
        obj.get("v") == CONTRACT_VERSION
        and isinstance(eid, str)
        and _ID.match(eid) is not None
        and type(obj.get("modification")) is int
        and obj.get("signal") in _SIGNALS
        and isinstance(intervals, list)
        and len(intervals) > 0
    )


@dataclass(frozen=True)
class InboxLimits:
    """How much each lane holds before it drops its oldest message."""

    events: int = 256
    """Valid-looking events waiting (each is fully validated when handled)."""
    other: int = 1024
    """Other messages waiting (junk, mostly; answered at a capped rate)."""
    bytes_per_lane: int = 4 * 1024 * 1024
    """Payload bytes per lane: 64 messages of the contract's largest size."""
    fifo_other: int = 16
    """While at most this many other messages wait, messages are served in arrival order
    (answers in the order sent); beyond, valid-looking events go first."""


class _Lane:
    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self.items: deque[tuple[int, InboundGridMessage]] = deque()
        self.bytes = 0
        self.max_messages = max_messages
        self.max_bytes = max_bytes

    def push(self, seq: int, msg: InboundGridMessage) -> int:
        """Append; returns how many of the oldest were dropped to make room."""
        self.items.append((seq, msg))
        self.bytes += len(msg.payload)
        dropped = 0
        while len(self.items) > 1 and (
            len(self.items) > self.max_messages or self.bytes > self.max_bytes
        ):
            self.bytes -= len(self.items.popleft()[1].payload)
            dropped += 1
        return dropped

    def pop(self) -> InboundGridMessage:
        _, msg = self.items.popleft()
        self.bytes -= len(msg.payload)
        return msg


class Inbox:
    """Inbound grid messages, bounded, valid-looking events first (FIFO within a lane)."""

    def __init__(self, limits: InboxLimits | None = None) -> None:
        limits = limits or InboxLimits()
        self._fifo_other = limits.fifo_other
        self._seq = 0
        self._events = _Lane(limits.events, limits.bytes_per_lane)
        self._other = _Lane(limits.other, limits.bytes_per_lane)
        self._ready = asyncio.Event()
        self.dropped = 0
        """Messages dropped unread since the last one handed out."""
        self.dropped_total = 0

    def put(self, payload: bytes, origin: str) -> None:
        """Queue one message (never blocks): triaged into its lane, the lane's oldest
        dropped if it is full."""
        msg = InboundGridMessage(payload, origin, likely_event=likely_event(payload))
        lane = self._events if msg.likely_event else self._other
        self._seq += 1
        dropped = lane.push(self._seq, msg)
        self.dropped += dropped
        self.dropped_total += dropped
        if not self._ready.is_set():
            self._ready.set()

    def _next_lane(self) -> _Lane:
        events, other = self._events.items, self._other.items
        if not other:
            return self._events
        if not events:
            return self._other
        if len(other) > self._fifo_other:
            return self._events
        return self._events if events[0][0] < other[0][0] else self._other

    def __len__(self) -> int:
        return len(self._events.items) + len(self._other.items)

    async def get(self) -> InboundGridMessage:
        """The next message (see the module's doc for which); it carries the count of
        messages dropped since the previous one (`dropped`)."""
        while not len(self):
            self._ready.clear()
            await self._ready.wait()
        msg = self._next_lane().pop()
        if self.dropped:
            msg = replace(msg, dropped=self.dropped)
            self.dropped = 0
        return msg
