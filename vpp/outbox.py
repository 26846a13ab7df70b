"""The grid link's outbox: what the site sends, by lane, kept in the store until the broker
acknowledged it.

Lanes, highest first; order is kept within a lane (the grid needs `received` before
`opt_in` of the same event):

- `ANSWER`: responses to valid events and reports. Stored: a kill while the broker is
  unreachable loses none; the next start sends them again, in order.
- `REJECTED`: `rejected` answers. Stored too, but they never hold up an answer: a flood of
  malformed messages does not delay the answers to valid ones.
- `LATEST`: telemetry, best effort. Not stored; a newer message on the same topic replaces
  the queued one (a stale reading is worth nothing once a new one exists).

A message leaves the store when its send completed (QoS 1: the broker's PUBACK). One is in
flight at a time, so at most one message per lost connection or kill may reach the grid
twice (sent, PUBACK not seen): delivery is at least once, and the grid deduplicates
(docs/grid-messages.md, Delivery).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, replace
from enum import IntEnum

import structlog

from devices.clock import Clock
from vpp.store.store import Store

log = structlog.get_logger(__name__)


class Lane(IntEnum):
    """Priority class of an outgoing message (lower goes first)."""

    ANSWER = 0
    REJECTED = 1
    LATEST = 2


@dataclass(frozen=True)
class Outgoing:
    """One message for the wire; `row` is its store row while unacknowledged."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    lane: Lane = Lane.ANSWER
    row: int | None = None


class Outbox:
    """Lanes of outgoing messages; the ones of stored lanes are also rows of `store`.

    With a store, the rows left unacknowledged by an earlier run are queued first, in order.
    """

    def __init__(self, clock: Clock, store: Store | None = None) -> None:
        self.clock = clock
        self.store = store
        self._queues: dict[Lane, deque[Outgoing]] = {Lane.ANSWER: deque(), Lane.REJECTED: deque()}
        self._latest: dict[str, Outgoing] = {}  # topic → the newest message (LATEST lane)
        self._in_flight: Outgoing | None = None
        self._ready = asyncio.Event()  # something is queued
        self._idle = asyncio.Event()  # nothing queued nor in flight
        self.replaced = 0
        """LATEST messages dropped for a newer one (telemetry never sent)."""
        if store is not None:
            for r in store.outgoing():
                lane = Lane(r.lane) if r.lane in (Lane.ANSWER, Lane.REJECTED) else Lane.ANSWER
                self._queues[lane].append(
                    Outgoing(r.topic, r.payload, r.qos, r.retain, lane, r.row)
                )
            if self.pending:
                log.info("outbox_resumed", messages=self.pending)
        self._changed()

    @property
    def pending(self) -> int:
        """Messages queued (not counting the one in flight)."""
        return sum(len(q) for q in self._queues.values()) + len(self._latest)

    def empty(self) -> bool:
        """Nothing queued (one message may still be in flight)."""
        return not self.pending

    def put(self, item: Outgoing) -> None:
        """Queue `item` in its lane; a stored lane's message is committed to the store first
        (if the store fails, it is still sent, from memory)."""
        if item.lane is Lane.LATEST:
            if self._latest.pop(item.topic, None) is not None:
                self.replaced += 1
            self._latest[item.topic] = item
        else:
            if self.store is not None:
                try:
                    row = self.store.add_outgoing(
                        self.clock.now(),
                        int(item.lane),
                        item.topic,
                        item.payload,
                        item.qos,
                        item.retain,
                    )
                    item = replace(item, row=row)
                except Exception as e:  # the grid still hears, without the restart guarantee
                    log.error("outbox_not_stored", topic=item.topic, error=repr(e))
            self._queues[item.lane].append(item)
        self._changed()

    async def take(self) -> Outgoing:
        """The next message to send (waits for one); `sent` or `give_back` it after."""
        while True:
            item = self._pop()
            if item is not None:
                self._in_flight = item
                self._changed()
                return item
            self._ready.clear()
            await self._ready.wait()

    def _pop(self) -> Outgoing | None:
        for lane in (Lane.ANSWER, Lane.REJECTED):
            if self._queues[lane]:
                return self._queues[lane].popleft()
        if self._latest:
            topic = next(iter(self._latest))
            return self._latest.pop(topic)
        return None

    def sent(self, item: Outgoing) -> None:
        """The send of `item` completed: it is not sent again, by this run or the next."""
        self._in_flight = None
        if item.row is not None and self.store is not None:
            try:
                self.store.outgoing_sent(item.row)
            except Exception as e:  # sent again on the next start: the grid deduplicates
                log.error("outbox_ack_not_stored", topic=item.topic, error=repr(e))
        self._changed()

    def give_back(self, item: Outgoing) -> None:
        """The send of `item` failed: it goes first again in its lane (telemetry: unless a
        newer message replaced it meanwhile)."""
        self._in_flight = None
        if item.lane is Lane.LATEST:
            if item.topic not in self._latest:
                self._latest = {item.topic: item, **self._latest}
        else:
            self._queues[item.lane].appendleft(item)
        self._changed()

    async def join(self) -> None:
        """Until nothing is queued nor in flight."""
        await self._idle.wait()

    def _changed(self) -> None:
        if self.pending:
            self._ready.set()
            self._idle.clear()
        elif self._in_flight is None:
            self._idle.set()
        else:
            self._idle.clear()
