"""What the VTN lists for this VEN, followed poll after poll: each new event becomes a
native event, a changed one a modification, one deleted (or no longer listed for this VEN)
a cancel (vpp.grid.oadr3.mapping). One event that cannot be read or handled is logged once
and skipped; the others are carried on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from pydantic import ValidationError

from devices.clock import Clock
from vpp.grid.oadr3 import wire
from vpp.grid.oadr3.client import VtnClient
from vpp.grid.oadr3.mapping import Unmappable, cancel_of, map_event, native_id
from vpp.grid.oadr3.read import first_error, list_of, parsed
from vpp.grid.oadr3.state import TrackedEvent, VenState
from vpp.grid.types import parse_duration, parse_time

log = structlog.get_logger(__name__)

PAGE = 50
"""`limit` of every list request: the spec's maximum."""
MAX_PAGES = 20
"""At most this many pages of one list per poll (1000 objects)."""
FORGET_AFTER = timedelta(days=2)
"""An event the VTN no longer lists is forgotten this long after its end (its reports are
out by then)."""

Deliver = Callable[[str, dict[str, Any]], None]
"""Hands a native event message (data) for a VTN event id to the agent."""


def digest(raw: dict[str, Any]) -> str:
    """What the VTN asks, without its bookkeeping (a new modificationDateTime alone is no
    modification)."""
    content = {k: v for k, v in raw.items() if k not in ("createdDateTime", "modificationDateTime")}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:32]


def event_end(native: dict[str, Any]) -> datetime:
    """When a native event's last interval ends."""
    last = native["intervals"][-1]
    return parse_time(last["start"]) + parse_duration(last["duration"])


class EventTracker:
    """Follows the VTN's programs and events for `ven_name` in `state`."""

    def __init__(
        self,
        state: VenState,
        clock: Clock,
        *,
        ven_name: str,
        simple_levels_kw: dict[int, float],
        deliver: Deliver,
    ) -> None:
        self.state = state
        self.clock = clock
        self.ven_name = ven_name
        self.simple_levels_kw = simple_levels_kw
        self.deliver = deliver
        self.programs: dict[str, str] = {}
        """programName by program id."""
        self._logged: set[str] = set()

    async def poll(self, client: VtnClient) -> None:
        """One poll: programs, then events; VtnError when a list cannot be had."""
        for program in parsed(
            await self._pages(client, "/programs"), wire.Program, "GET /programs"
        ):
            self.programs[program.id] = program.programName
        seen: set[str] = set()
        for raw in await self._pages(client, "/events"):
            ident = raw.get("id") if isinstance(raw, dict) else None
            if isinstance(ident, str):
                seen.add(ident)  # unreadable is not deleted
            try:
                event = wire.Event.model_validate(raw)
            except ValidationError as e:
                key = digest(raw) if isinstance(raw, dict) else repr(raw)[:100]
                self._once(f"bad:{key}", "openadr3_event_unreadable", ident, first_error(e))
                continue
            try:
                self._track(event, digest(raw))
            except Exception as e:  # one event we cannot handle must not block the others
                self._once(f"failed:{digest(raw)}", "openadr3_event_failed", event.id, repr(e))
        now = self.clock.now()
        self._cancel_gone(seen, now)
        self.forget_old(seen, now)
        self.state.save()

    async def _pages(self, client: VtnClient, path: str) -> list[Any]:
        items: list[Any] = []
        for page in range(MAX_PAGES):
            params = [("targets", self.ven_name), ("skip", page * PAGE), ("limit", PAGE)]
            batch = list_of(await client.request("GET", path, params=params), path)
            items.extend(batch)
            if len(batch) < PAGE:
                return items
        log.warning("openadr3_list_truncated", path=path, objects=len(items))
        return items

    def _track(self, event: wire.Event, content: str) -> None:
        tracked = self.state.events.get(event.id)
        if tracked is not None and tracked.digest == content:
            return
        if tracked is None:
            first_seen = self.clock.now()
            tracked = TrackedEvent(native_id(event.id), 0, content, first_seen.isoformat())
            self.state.events[event.id] = tracked
            modification = 0
        else:
            modification = tracked.modification + (0 if tracked.native is None else 1)
            first_seen = parse_time(tracked.first_seen)
        tracked.digest = content
        try:
            mapped = map_event(
                event,
                program_name=self.programs.get(event.programID),
                simple_levels_kw=self.simple_levels_kw,
                modification=modification,
                first_seen=first_seen,
            )
        except Unmappable as e:
            log.warning("openadr3_event_ignored", vtn_event=event.id, reason=str(e))
            if tracked.native is not None and not tracked.cancelled:
                # What we were doing is no longer asked: stop it.
                tracked.modification = modification
                tracked.cancelled = True
                self.deliver(event.id, cancel_of(tracked.native, modification))
            return
        for ignored in mapped.ignored_types:
            log.warning("openadr3_payload_ignored", vtn_event=event.id, payload_type=ignored)
        tracked.modification = modification
        tracked.native = mapped.native
        tracked.cancelled = False
        tracked.interval_ids = mapped.interval_ids
        tracked.descriptors = [
            d.model_dump(exclude_none=True) for d in event.reportDescriptors or []
        ]
        self.deliver(event.id, mapped.native)
        log.info(
            "openadr3_event",
            vtn_event=event.id,
            native_id=tracked.native_id,
            modification=modification,
            payload_type=mapped.payload_type,
        )

    def _cancel_gone(self, seen: set[str], now: datetime) -> None:
        for oadr_id, tracked in self.state.events.items():
            if oadr_id in seen or tracked.cancelled or tracked.native is None:
                continue
            tracked.cancelled = True
            if event_end(tracked.native) <= now:
                continue  # over already: nothing to cancel
            tracked.modification += 1
            self.deliver(oadr_id, cancel_of(tracked.native, tracked.modification))
            log.info("openadr3_event_gone", vtn_event=oadr_id, native_id=tracked.native_id)

    def forget_old(self, seen: set[str], now: datetime) -> None:
        """Forget events the VTN no longer lists that ended (or were first seen) more than
        FORGET_AFTER ago: the state stays the size of what is current."""
        for oadr_id, tracked in list(self.state.events.items()):
            if oadr_id in seen:
                continue
            since = parse_time(tracked.first_seen)
            if tracked.native is not None:
                since = max(since, event_end(tracked.native))
            if now - since > FORGET_AFTER:
                del self.state.events[oadr_id]

    def _once(self, key: str, what: str, vtn_event: Any, error: str) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.warning(what, vtn_event=vtn_event, error=error[:200])
