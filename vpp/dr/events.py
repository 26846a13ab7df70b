"""Grid events in the agent: validate, store, answer; resume after a restart.

Every event message from the grid link gets its answers per the contract (vpp.grid.ledger):
the new state is committed to SQLite before the first answer is published, and every
answer is stored too. A malformed message gets exactly one `rejected` and changes nothing,
while they come at a capped rate; beyond it they go unanswered and the next `rejected` says
how many (vpp.dr.rejections).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from devices.clock import Clock
from vpp.dr.rejections import RejectionBudget
from vpp.grid.ledger import (
    Action,
    EventState,
    completed,
    decide,
    opted_in,
    opted_out,
)
from vpp.grid.link import GridLink, response_payload
from vpp.grid.messages import Event, Response
from vpp.grid.parse import Rejection, failed_handling, parse_event
from vpp.store.store import Store

log = structlog.get_logger(__name__)


def _state_payload(state: EventState) -> dict[str, Any]:
    return {
        "event": state.event.model_dump(mode="json"),
        "expected_kw": list(state.expected_kw) if state.expected_kw is not None else None,
        "reason": state.reason,
    }


def _state_from_payload(payload: dict[str, Any], status: str) -> EventState:
    event = Event.model_validate(payload["event"])
    expected = payload.get("expected_kw")
    return EventState(
        event,
        status,  # type: ignore[arg-type]
        tuple(expected) if expected is not None else None,
        payload.get("reason"),
    )


class EventManager:
    """Holds the live events; `on_change(event_id)` is called when planning must run."""

    def __init__(
        self,
        clock: Clock,
        store: Store,
        link: GridLink,
        on_change: Callable[[str], None] = lambda _id: None,
        rejections: RejectionBudget | None = None,
    ) -> None:
        self.clock = clock
        self.store = store
        self.link = link
        self.on_change = on_change
        self.states: dict[str, EventState] = {}
        self.rejected = 0
        self.answers: Counter[str] = Counter()
        """Responses sent since start, by status (received, opt_in, ...): for metrics."""
        self.rejections = rejections or RejectionBudget()
        self._capping = False
        for stored in store.events():
            try:
                self.states[stored.event_id] = _state_from_payload(stored.payload, stored.status)
            except Exception as e:  # a row written by an older contract: keep going
                log.error("stored_event_unreadable", event_id=stored.event_id, error=str(e))

    def resumable(self) -> list[EventState]:
        """Events still live after a restart (pending or active)."""
        return [s for s in self.states.values() if s.live]

    # -- answers --------------------------------------------------------------------------

    def _answer(self, response: Response) -> None:
        # One transaction: the answer's row and its outbox row (a kill between two commits
        # would keep the one and lose the other).
        with self.store.batch():
            self.store.add_response(self.clock.now(), response_payload(response))
            self.link.send_response(response)
        self.answers[response.status] += 1

    def _save(self, state: EventState, now: datetime) -> None:
        self.store.save_event(
            now, state.event_id, state.modification, _state_payload(state), state.status
        )
        self.states[state.event_id] = state

    # -- inbound --------------------------------------------------------------------------

    def handle(self, payload: bytes, *, likely_event: bool = True, dropped: int = 0) -> None:
        """One event message from the grid (its raw payload). Never raises: a message that
        fails validation gets one `rejected` naming the field (within the rate of
        `rejections`, else it is counted); one whose handling fails (a store error, a bug)
        is logged and gets one `rejected`, and the agent goes on.

        `likely_event` False (the link's triage, vpp.grid.inbox: it cannot be a valid
        event) lets a message over the rate be counted without being parsed; `dropped`
        counts messages the link dropped unread before this one."""
        if dropped:
            self.rejections.count_unanswered(dropped)
        if not likely_event and not self._may_reject():
            return  # junk over the rate: not even parsed
        now = self.clock.now()
        parsed = parse_event(payload, now)
        if isinstance(parsed, Rejection):
            if likely_event and not self._may_reject():
                return
            self.rejected += 1
            response = parsed.response
            note = self.rejections.note()
            self._capping = bool(note)
            if note:
                reason = (response.reason or "")[: 1000 - len(note)] + note
                response = response.model_copy(update={"reason": reason})
            log.warning(
                "event_rejected",
                event_id=response.event_id,
                errors=[f"{e.loc}: {e.msg}" for e in parsed.errors],
                unanswered=self.rejections.unanswered_total,
            )
            self._answer(response)
            return
        try:
            self._accept(parsed, now)
        except Exception as exc:
            self.rejected += 1
            log.exception("event_handling_failed", event_id=parsed.event_id)
            response = failed_handling(parsed, exc, now).response
            try:
                self._answer(response)
            except Exception:  # the store itself failed: the grid still hears
                log.exception("event_answer_not_stored", event_id=parsed.event_id)
                self.link.send_response(response)

    def _may_reject(self) -> bool:
        """Whether an invalid message now is answered (else it is counted; logged once as a
        stretch of unanswered ones begins, then each answered `rejected` logs the count)."""
        if self.rejections.allow(self.clock.monotonic()):
            return True
        self.rejected += 1
        if not self._capping:
            self._capping = True
            log.warning("event_rejections_capped", rate_per_s=self.rejections.rate_per_s)
        return False

    def _accept(self, parsed: Event, now: datetime) -> None:
        decision = decide(self.states, parsed, now)
        if decision.action in (Action.STALE, Action.PAST):
            self.rejected += 1
        if decision.conflict:
            log.warning("event_duplicate_differs", event_id=parsed.event_id)
        if decision.state is not None:
            self._save(decision.state, now)  # stored before it is answered
        for response in decision.responses:
            self._answer(response)
        log.info(
            "event_message",
            event_id=parsed.event_id,
            modification=parsed.modification,
            action=str(decision.action),
        )
        if decision.plan or decision.recover or decision.action is Action.CANCEL:
            self.on_change(parsed.event_id)

    # -- outcomes of planning and reporting -----------------------------------------------

    def opt_in(self, event_id: str, expected_kw: list[float], modification: int) -> None:
        state = self.states[event_id]
        if not state.live or state.modification != modification or state.status != "received":
            return
        new, response = opted_in(state, expected_kw, self.clock.now(), modification)
        self._save(new, self.clock.now())
        self._answer(response)

    def opt_out(self, event_id: str, reason: str, modification: int) -> None:
        state = self.states[event_id]
        if not state.live or state.modification != modification or state.status != "received":
            return
        new, response = opted_out(state, reason, self.clock.now(), modification)
        self._save(new, self.clock.now())
        self._answer(response)

    def complete(self, event_id: str) -> None:
        state = self.states[event_id]
        if not state.live:
            return
        new, response = completed(state, self.clock.now())
        self._save(new, self.clock.now())
        self._answer(response)

    def dispatchable(self) -> list[Event]:
        """Events the dispatcher acts on (live, not test, not opted out)."""
        return [s.event for s in self.states.values() if s.dispatchable]

    def awaiting_plan(self) -> list[EventState]:
        """Live events answered `received` but not yet opted in or out."""
        return [s for s in self.states.values() if s.live and s.status == "received"]
