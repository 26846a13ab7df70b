"""The TELEMETRY_USAGE report: site import samples from the agent's telemetry, cut into the
VTN's granularity and sent every reportBackDuration.

Each value is the mean of the samples in its interval, or, when none fell in it (telemetry
every 5 s against a 5 s granularity jitters), the last sample before its end; intervals
before the first sample are not reported.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vpp.grid.openadr2b.inbound import ReportRequest
from vpp.grid.openadr2b.wire import ReportValue

MAX_BACKLOG = 288
"""Intervals kept for a request while the VTN is away; older ones are dropped."""


class ImportSamples:
    """The site import (kW) by time, newest last, bounded."""

    def __init__(self, maxlen: int = 20_000) -> None:
        self._samples: deque[tuple[datetime, float]] = deque(maxlen=maxlen)

    def add(self, ts: datetime, kw: float) -> None:
        if self._samples and ts < self._samples[-1][0]:
            return  # out of order: a replayed message
        self._samples.append((ts, kw))

    def value(self, start: datetime, end: datetime) -> float | None:
        """The interval's mean, the last sample before its end, or None before any."""
        inside = [kw for ts, kw in self._samples if start <= ts < end]
        if inside:
            return sum(inside) / len(inside)
        before = [kw for ts, kw in self._samples if ts < end]
        return before[-1] if before else None

    def forget_before(self, ts: datetime) -> None:
        # Keep one sample before `ts`: it is the value of an empty interval after it.
        while len(self._samples) > 1 and self._samples[1][0] < ts:
            self._samples.popleft()


@dataclass
class Schedule:
    """One accepted report request: what was sent up to `reported_to`, when the next update
    is due."""

    request: ReportRequest
    r_id: str
    reported_to: datetime
    due: datetime
    sent: int = field(default=0)

    def intervals(self, samples: ImportSamples, now: datetime) -> list[ReportValue]:
        """The whole intervals ended since the last update (at most MAX_BACKLOG)."""
        gran = self.request.granularity
        if gran <= timedelta(0):
            return []
        out: list[ReportValue] = []
        start = self.reported_to
        while start + gran <= now:
            value = samples.value(start, start + gran)
            if value is not None:
                out.append(ReportValue(start, gran, value))
            start += gran
        return out[-MAX_BACKLOG:]

    def through(self, now: datetime) -> datetime:
        """The end of the last whole interval by `now`."""
        gran = self.request.granularity
        if gran <= timedelta(0) or now < self.reported_to:
            return self.reported_to
        return self.reported_to + gran * ((now - self.reported_to) // gran)

    def done(self, through: datetime, now: datetime) -> None:
        """The VTN has the intervals up to `through`; the next update is a period on (from
        now, if the VTN was away for longer)."""
        self.reported_to = max(self.reported_to, through)
        back = max(self.request.back, timedelta(seconds=1))
        self.due = self.due + back if self.due + back > now else now + back
        self.sent += 1
