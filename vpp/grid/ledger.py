"""The event state machine of the contract, as pure functions over stored event states.

`decide` takes what the site knows about events (event_id → `EventState`) and one new,
valid `Event`, and says what to answer, what to store and whether to (re)plan, dispatch or
recover. `opted_in`, `opted_out` and `completed` are the later transitions. No I/O: the
integrator stores `Decision.state` (before answering) and publishes `Decision.responses`.

| message                                  | action          | answers                           |
|------------------------------------------|-----------------|-----------------------------------|
| unknown event_id                         | ACCEPT          | received (plan → opt_in/opt_out)  |
| higher modification                      | REPLACE         | received (re-plan)                |
| same modification (duplicate)            | DUPLICATE       | current status, nothing re-applied|
| lower modification (stale)               | STALE           | rejected, nothing changed         |
| unknown event_id, ended before now       | PAST            | rejected naming intervals[N]      |
| cancelled, known, higher modification    | CANCEL          | cancelled (recover if acting)     |
| cancelled, unknown event_id              | CANCEL_UNKNOWN  | cancelled (not an error)          |

A `test` event is answered like a real one but `dispatch` is never true for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, get_args

from vpp.grid.messages import Event, FieldError, Response
from vpp.grid.parse import parse_message
from vpp.grid.types import ResponseStatus

_ALL_STATUSES = frozenset(get_args(ResponseStatus)) - {"rejected"}

ACTIVE_STATUSES: frozenset[ResponseStatus] = frozenset({"received", "opt_in", "opt_out"})
"""Statuses of an event that is still live (not cancelled, not completed)."""


class Action(StrEnum):
    """What `decide` concluded about one event message."""

    ACCEPT = "accept"
    REPLACE = "replace"
    DUPLICATE = "duplicate"
    STALE = "stale"
    PAST = "past"
    CANCEL = "cancel"
    CANCEL_UNKNOWN = "cancel_unknown"


@dataclass(frozen=True)
class EventState:
    """What the site stores per event: the latest accepted version and its status."""

    event: Event
    status: ResponseStatus
    expected_kw: tuple[float, ...] | None = None
    """Per interval, what the site expects to deliver (kW), once opted in."""
    reason: str | None = None
    """Why the site opted out."""

    @property
    def event_id(self) -> str:
        """The event's id."""
        return self.event.event_id

    @property
    def modification(self) -> int:
        """The stored modification number."""
        return self.event.modification

    @property
    def live(self) -> bool:
        """Not cancelled and not completed."""
        return self.status in ACTIVE_STATUSES

    @property
    def dispatchable(self) -> bool:
        """The dispatcher may act on it: live, not a test, and not opted out."""
        return self.live and not self.event.test and self.status != "opt_out"

    def response(self, now: datetime) -> Response:
        """The current status as a Response (what a duplicate is answered with)."""
        return _response(self.event, self.status, now, self.expected_kw, self.reason)

    def to_record(self) -> dict[str, Any]:
        """Plain columns for storage: event_id, modification, status, event_json (the event
        as received, re-validated on load), expected_kw_json, reason."""
        return {
            "event_id": self.event_id,
            "modification": self.modification,
            "status": self.status,
            "event_json": self.event.to_json().decode(),
            "expected_kw_json": None
            if self.expected_kw is None
            else json.dumps(list(self.expected_kw)),
            "reason": self.reason,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> EventState:
        """The state stored by `to_record` (raises MessageError or ValueError if corrupt)."""
        event = parse_message(Event, str(record["event_json"]).encode())
        status = record["status"]
        if status not in _ALL_STATUSES:
            raise ValueError(f"status: {status!r} is not an event status")
        exp = record.get("expected_kw_json")
        expected = None if exp is None else tuple(float(x) for x in json.loads(exp))
        return cls(event, status, expected, record.get("reason"))


@dataclass(frozen=True)
class Decision:
    """The outcome of one valid event message."""

    action: Action
    responses: tuple[Response, ...]
    """To publish now, in order (after storing `state`)."""
    state: EventState | None
    """The state to store for this event_id; None leaves the stored state unchanged."""
    plan: bool = False
    """(Re)plan this event, then answer with `opted_in` or `opted_out`."""
    dispatch: bool = False
    """The dispatcher may act on this event (never for a test event)."""
    recover: bool = False
    """Stop acting on the previous version of this event and ramp back (recovery)."""
    conflict: bool = False
    """A duplicate whose content differs from the stored version (worth a warning log: the
    operator forgot to raise `modification`)."""


def decide(known: Mapping[str, EventState], event: Event, now: datetime) -> Decision:
    """Decide what one valid event message does, given the stored states of known events."""
    current = known.get(event.event_id)
    if current is None:
        if event.cancelled:
            state = EventState(event, "cancelled")
            return Decision(Action.CANCEL_UNKNOWN, (state.response(now),), state)
        if event.end <= now:
            return Decision(Action.PAST, (_past(event, now),), None)
        state = EventState(event, "received")
        return Decision(
            Action.ACCEPT, (state.response(now),), state, plan=True, dispatch=not event.test
        )
    if event.modification < current.modification:
        msg = f"modification {event.modification} is older than the current {current.modification}"
        stale = Response(
            event_id=event.event_id,
            modification=event.modification,
            status="rejected",
            reason=f"Stale event message: {msg}.",
            errors=[FieldError(loc="modification", msg=msg)],
            ts=now,
        )
        return Decision(Action.STALE, (stale,), None)
    if event.modification == current.modification:
        return Decision(
            Action.DUPLICATE, (current.response(now),), None, conflict=event != current.event
        )
    if event.cancelled:
        state = EventState(event, "cancelled")
        return Decision(Action.CANCEL, (state.response(now),), state, recover=current.dispatchable)
    state = EventState(event, "received")
    return Decision(
        Action.REPLACE,
        (state.response(now),),
        state,
        plan=True,
        dispatch=not event.test,
        recover=current.dispatchable and event.test,
    )


def _past(event: Event, now: datetime) -> Response:
    """The answer to a new event that ended before it arrived: nothing is left to carry out
    (an event that has begun is taken, for what remains). A known event moved into the past
    by a higher modification is not this: that collapses its span, and the site ends it."""
    last = len(event.intervals) - 1
    msg = (
        f"ends at {event.end.isoformat()}, before the site received the event "
        f"({now.isoformat()}): nothing is left to carry out"
    )
    return Response(
        event_id=event.event_id,
        modification=event.modification,
        status="rejected",
        reason=f"Event in the past: intervals[{last}] {msg}.",
        errors=[FieldError(loc=f"intervals[{last}]", msg=msg)],
        ts=now,
    )


class InvalidTransition(ValueError):
    """A later transition asked of an event that is cancelled, completed or superseded."""


def opted_in(
    state: EventState, expected_kw: Sequence[float], now: datetime, modification: int | None = None
) -> tuple[EventState, Response]:
    """The plan for `state` can deliver `expected_kw` per interval (kW): answer `opt_in`."""
    _check_live(state, modification)
    if len(expected_kw) != len(state.event.intervals):
        raise InvalidTransition(
            f"expected_kw has {len(expected_kw)} values for {len(state.event.intervals)} intervals"
        )
    new = replace(state, status="opt_in", expected_kw=tuple(expected_kw), reason=None)
    return new, new.response(now)


def opted_out(
    state: EventState, reason: str, now: datetime, modification: int | None = None
) -> tuple[EventState, Response]:
    """The site will not take part (e.g. no flexibility left): answer `opt_out` with a reason."""
    _check_live(state, modification)
    new = replace(state, status="opt_out", expected_kw=None, reason=reason)
    return new, new.response(now)


def completed(state: EventState, now: datetime) -> tuple[EventState, Response]:
    """The event has ended and its final report is sent: answer `completed`."""
    _check_live(state, None)
    new = replace(state, status="completed")
    return new, new.response(now)


def due_for_completion(state: EventState, now: datetime) -> bool:
    """The live event's last interval has ended at `now`."""
    return state.live and now >= state.event.end


def _check_live(state: EventState, modification: int | None) -> None:
    if not state.live:
        raise InvalidTransition(f"event {state.event_id} is {state.status}")
    if modification is not None and modification != state.modification:
        raise InvalidTransition(
            f"event {state.event_id}: plan was for modification {modification}, "
            f"stored is {state.modification}"
        )


def _response(
    event: Event,
    status: ResponseStatus,
    now: datetime,
    expected_kw: tuple[float, ...] | None,
    reason: str | None,
) -> Response:
    return Response(
        event_id=event.event_id,
        modification=event.modification,
        status=status,
        expected_kw=list(expected_kw) if status == "opt_in" and expected_kw is not None else None,
        reason=reason if status == "opt_out" else None,
        ts=now,
    )
