"""What the agent says about a VTN event, as the OpenADR 3.1 reports to post: per interval
and final reports as the event's descriptors ask (vpp.grid.oadr3.reports), and the expected
shed on opt-in. OpenADR 3.1 has no opt-in or opt-out message: answers are logged. Reports
are queued (`queue`), each once (what was made is kept in the state)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from vpp.grid.messages import Response
from vpp.grid.oadr3.reports import REPORTED_TYPES, flexibility_body, report_body
from vpp.grid.oadr3.state import VenState
from vpp.grid.oadr3.wire import ReportDescriptor

log = structlog.get_logger(__name__)

FLEXIBILITY = "LOAD_SHED_DELTA_AVAILABLE"


class ReportMaker:
    """Reports of the events in `state` for `client_name`'s `resource_name`."""

    def __init__(
        self,
        state: VenState,
        *,
        client_name: str,
        resource_name: str,
        queue: Callable[[dict[str, Any]], None],
    ) -> None:
        self.state = state
        self.client_name = client_name
        self.resource_name = resource_name
        self.queue = queue
        self._logged: set[str] = set()

    def answer(self, response: Response) -> None:
        """Log the agent's answer; an opt_in to a curtailment whose descriptors ask for
        LOAD_SHED_DELTA_AVAILABLE queues the expected shed per interval."""
        log.info(
            "openadr3_answer",
            event_id=response.event_id,
            modification=response.modification,
            status=response.status,
            reason=response.reason,
        )
        if response.status != "opt_in" or response.event_id is None:
            return
        found = self.state.by_native(response.event_id)
        if found is None or response.expected_kw is None:
            return
        oadr_id, tracked = found
        asked = any(d.get("payloadType") == FLEXIBILITY for d in tracked.descriptors)
        mod = response.modification or 0
        if not asked or tracked.native is None or mod in tracked.flexibility:
            return
        if tracked.native.get("signal") != "curtail_kw":
            return  # a cap's expected_kw is the cap, not a reduction
        self.queue(
            flexibility_body(
                event_id=oadr_id,
                client_name=self.client_name,
                resource_name=self.resource_name,
                expected_kw=response.expected_kw,
                intervals=tracked.native["intervals"],
                interval_ids=tracked.interval_ids,
            )
        )
        tracked.flexibility.append(mod)
        self.state.save()

    def report(self, report: dict[str, Any]) -> None:
        """The intervals ended since the last report (each interval once, after it ended),
        and after the last one all of them again in a final report."""
        event_id = report.get("event_id")
        found = self.state.by_native(event_id) if isinstance(event_id, str) else None
        if found is None:
            return
        oadr_id, tracked = found
        descriptors = [ReportDescriptor.model_validate(d) for d in tracked.descriptors]
        if not descriptors:
            return
        self._note_unreported(oadr_id, descriptors)
        mod = int(report.get("modification", 0))
        intervals: list[dict[str, Any]] = list(report.get("intervals", []))
        done = tracked.reported.get(str(mod), 0)
        posts: list[tuple[int, str]] = []
        if len(intervals) > done:
            posts.append((done, f"{oadr_id} intervals {done}-{len(intervals) - 1}"))
        final = bool(report.get("final")) and mod not in tracked.final
        if final:
            posts.append((0, f"{oadr_id} final"))
        for first, name in posts:
            body = report_body(
                event_id=oadr_id,
                client_name=self.client_name,
                resource_name=self.resource_name,
                report_name=name,
                descriptors=descriptors,
                intervals=intervals[first:],
                interval_ids=tracked.interval_ids[first:],
            )
            if body is not None:
                self.queue(body)
        tracked.reported[str(mod)] = max(done, len(intervals))
        if final:
            tracked.final.append(mod)
        self.state.save()

    def _note_unreported(self, oadr_id: str, descriptors: list[ReportDescriptor]) -> None:
        for d in descriptors:
            key = f"{oadr_id}:{d.payloadType}"
            if d.payloadType in (*REPORTED_TYPES, FLEXIBILITY) or key in self._logged:
                continue
            self._logged.add(key)
            log.warning(
                "openadr3_report_type_ignored", vtn_event=oadr_id, payload_type=d.payloadType
            )
