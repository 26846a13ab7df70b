"""The event state machine: one table of (stored state, message) → decision."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.grid.helpers import NOW, event_dict
from vpp.grid.ledger import (
    Action,
    EventState,
    InvalidTransition,
    completed,
    decide,
    due_for_completion,
    opted_in,
    opted_out,
)
from vpp.grid.messages import Event
from vpp.grid.types import ResponseStatus

EID = "evt-2026.07.15_a"


def ev(**kw: Any) -> Event:
    return Event.model_validate(event_dict(**kw))


def stored(status: ResponseStatus, mod: int = 2, test: bool = False) -> dict[str, EventState]:
    exp = (40.0, 60.0) if status == "opt_in" else None
    reason = "no flexibility left" if status == "opt_out" else None
    return {EID: EventState(ev(modification=mod, test=test), status, exp, reason)}


# (case, stored states, message, action, answered statuses, stored status after (None: unchanged),
#  plan, dispatch, recover)
TABLE: list[
    tuple[str, dict[str, EventState], Event, Action, list[str], str | None, bool, bool, bool]
] = [
    ("new event", {}, ev(), Action.ACCEPT, ["received"], "received", True, True, False),
    (
        "new test event",
        {},
        ev(test=True),
        Action.ACCEPT,
        ["received"],
        "received",
        True,
        False,
        False,
    ),
    (
        "other event known",
        {"x": stored("opt_in")[EID]},
        ev(),
        Action.ACCEPT,
        ["received"],
        "received",
        True,
        True,
        False,
    ),
    (
        "higher modification",
        stored("opt_in"),
        ev(modification=3),
        Action.REPLACE,
        ["received"],
        "received",
        True,
        True,
        False,
    ),
    (
        "higher modification, now a test",
        stored("opt_in"),
        ev(modification=3, test=True),
        Action.REPLACE,
        ["received"],
        "received",
        True,
        False,
        True,
    ),
    (
        "higher modification of a completed event",
        stored("completed"),
        ev(modification=5),
        Action.REPLACE,
        ["received"],
        "received",
        True,
        True,
        False,
    ),
    (
        "duplicate while received",
        stored("received"),
        ev(modification=2),
        Action.DUPLICATE,
        ["received"],
        None,
        False,
        False,
        False,
    ),
    (
        "duplicate while opted in",
        stored("opt_in"),
        ev(modification=2),
        Action.DUPLICATE,
        ["opt_in"],
        None,
        False,
        False,
        False,
    ),
    (
        "duplicate while opted out",
        stored("opt_out"),
        ev(modification=2),
        Action.DUPLICATE,
        ["opt_out"],
        None,
        False,
        False,
        False,
    ),
    (
        "duplicate after cancel",
        stored("cancelled"),
        ev(modification=2, cancelled=True),
        Action.DUPLICATE,
        ["cancelled"],
        None,
        False,
        False,
        False,
    ),
    (
        "duplicate after completion",
        stored("completed"),
        ev(modification=2),
        Action.DUPLICATE,
        ["completed"],
        None,
        False,
        False,
        False,
    ),
    (
        "stale modification",
        stored("opt_in"),
        ev(modification=1),
        Action.STALE,
        ["rejected"],
        None,
        False,
        False,
        False,
    ),
    (
        "stale cancel",
        stored("opt_in"),
        ev(modification=0, cancelled=True),
        Action.STALE,
        ["rejected"],
        None,
        False,
        False,
        False,
    ),
    (
        "cancel of an opted-in event",
        stored("opt_in"),
        ev(modification=3, cancelled=True),
        Action.CANCEL,
        ["cancelled"],
        "cancelled",
        False,
        False,
        True,
    ),
    (
        "cancel of a received event",
        stored("received"),
        ev(modification=3, cancelled=True),
        Action.CANCEL,
        ["cancelled"],
        "cancelled",
        False,
        False,
        True,
    ),
    (
        "cancel of an opted-out event",
        stored("opt_out"),
        ev(modification=3, cancelled=True),
        Action.CANCEL,
        ["cancelled"],
        "cancelled",
        False,
        False,
        False,
    ),
    (
        "cancel of a test event",
        stored("opt_in", test=True),
        ev(modification=3, cancelled=True, test=True),
        Action.CANCEL,
        ["cancelled"],
        "cancelled",
        False,
        False,
        False,
    ),
    (
        "cancel of a completed event",
        stored("completed"),
        ev(modification=3, cancelled=True),
        Action.CANCEL,
        ["cancelled"],
        "cancelled",
        False,
        False,
        False,
    ),
    (
        "cancel of an unknown event",
        {},
        ev(cancelled=True),
        Action.CANCEL_UNKNOWN,
        ["cancelled"],
        "cancelled",
        False,
        False,
        False,
    ),
    (
        "re-activation after cancel",
        stored("cancelled"),
        ev(modification=3),
        Action.REPLACE,
        ["received"],
        "received",
        True,
        True,
        False,
    ),
]


@pytest.mark.parametrize(
    ("known", "msg", "action", "answers", "after", "plan", "dispatch", "recover"),
    [c[1:] for c in TABLE],
    ids=[c[0] for c in TABLE],
)
def test_decision_table(
    known: dict[str, EventState],
    msg: Event,
    action: Action,
    answers: list[str],
    after: str | None,
    plan: bool,
    dispatch: bool,
    recover: bool,
) -> None:
    d = decide(known, msg, NOW)
    assert d.action is action
    assert [r.status for r in d.responses] == answers
    assert all(r.event_id == EID and r.ts == NOW for r in d.responses)
    assert (d.state.status if d.state else None) == after
    assert (d.plan, d.dispatch, d.recover) == (plan, dispatch, recover)
    if d.state is not None:
        assert d.state.event == msg  # the new version is what gets stored


def test_duplicate_answers_expected_kw_and_reason_again() -> None:
    d = decide(stored("opt_in"), ev(modification=2), NOW)
    assert d.responses[0].expected_kw == [40.0, 60.0]
    assert d.responses[0].modification == 2
    assert not d.conflict
    d = decide(stored("opt_out"), ev(modification=2), NOW)
    assert d.responses[0].reason == "no flexibility left"
    assert d.responses[0].expected_kw is None


def test_duplicate_with_different_content_is_flagged_not_applied() -> None:
    d = decide(stored("opt_in"), ev(modification=2, cancelled=True), NOW)
    assert d.action is Action.DUPLICATE and d.state is None and d.conflict
    assert d.responses[0].status == "opt_in"


def test_stale_answer_names_the_modification_field() -> None:
    d = decide(stored("opt_in"), ev(modification=1), NOW)
    r = d.responses[0]
    assert (r.modification, r.errors[0].loc) == (1, "modification")
    assert "older than the current 2" in r.errors[0].msg


def test_full_life_received_opt_in_completed() -> None:
    d = decide({}, ev(), NOW)
    assert d.state is not None
    state, r = opted_in(d.state, [50.0, 80.5], NOW, modification=0)
    assert (r.status, r.expected_kw) == ("opt_in", [50.0, 80.5])
    assert state.dispatchable
    end = state.event.end
    assert not due_for_completion(state, end - timedelta(seconds=1))
    assert due_for_completion(state, end)
    state, r = completed(state, end)
    assert (state.status, r.status, r.expected_kw) == ("completed", "completed", None)
    assert not state.live and not state.dispatchable
    with pytest.raises(InvalidTransition):
        completed(state, end)


def test_opt_out_then_replan_to_opt_in() -> None:
    state = stored("received")[EID]
    state, r = opted_out(state, "battery offline", NOW)
    assert (r.status, r.reason) == ("opt_out", "battery offline")
    assert not state.dispatchable
    state, r = opted_in(state, [1.0, 2.0], NOW)
    assert state.status == "opt_in" and state.reason is None


def test_plans_for_superseded_or_cancelled_events_are_refused() -> None:
    state = stored("received", mod=3)[EID]
    with pytest.raises(InvalidTransition, match="modification 2"):
        opted_in(state, [1.0, 2.0], NOW, modification=2)
    with pytest.raises(InvalidTransition, match="3 values for 2 intervals"):
        opted_in(state, [1.0, 2.0, 3.0], NOW)
    with pytest.raises(InvalidTransition, match="cancelled"):
        opted_out(stored("cancelled")[EID], "x", NOW)


def test_test_event_is_never_dispatchable() -> None:
    d = decide({}, ev(test=True), NOW)
    assert d.state is not None
    state, r = opted_in(d.state, [5.0, 5.0], NOW)
    assert r.status == "opt_in" and r.expected_kw == [5.0, 5.0]
    assert not state.dispatchable


@pytest.mark.parametrize("status", ["received", "opt_in", "opt_out", "cancelled", "completed"])
def test_state_record_round_trip(status: ResponseStatus) -> None:
    state = stored(status, test=True)[EID]
    record = state.to_record()
    assert {type(v) for v in record.values()} <= {str, int, type(None)}
    assert EventState.from_record(record) == state


def test_corrupt_record_is_refused() -> None:
    record = stored("opt_in")[EID].to_record()
    with pytest.raises(ValueError, match="status"):
        EventState.from_record({**record, "status": "rejected"})
    with pytest.raises(ValueError):
        EventState.from_record({**record, "event_json": '{"v": 1}'})


END = ev().end  # 2026-07-15T07:00Z: the end of the second interval


@pytest.mark.parametrize("test", [False, True])
def test_a_new_event_that_ended_before_it_arrived_is_rejected_naming_its_last_interval(
    test: bool,
) -> None:
    d = decide({}, ev(test=test), END)
    assert d.action is Action.PAST
    assert d.state is None and not (d.plan or d.dispatch or d.recover)
    (r,) = d.responses
    assert r.status == "rejected"
    assert [e.loc for e in r.errors] == ["intervals[1]"]
    assert "2026-07-15T15:00:00+08:00" in r.errors[0].msg and "before the site received" in (
        r.reason or ""
    )


def test_an_event_received_after_its_start_is_still_taken_for_what_remains() -> None:
    d = decide({}, ev(), END - timedelta(seconds=1))
    assert d.action is Action.ACCEPT and [r.status for r in d.responses] == ["received"]


@pytest.mark.parametrize(
    "known, message, action, status",
    [
        (stored("completed"), ev(modification=2), Action.DUPLICATE, "completed"),
        (stored("opt_in"), ev(modification=3), Action.REPLACE, "received"),  # span collapsed
        ({}, ev(cancelled=True), Action.CANCEL_UNKNOWN, "cancelled"),
    ],
)
def test_known_events_and_cancels_after_the_end_are_answered_as_before(
    known: dict[str, EventState], message: Event, action: Action, status: str
) -> None:
    d = decide(known, message, END + timedelta(days=1))
    assert d.action is action and [r.status for r in d.responses] == [status]
