"""How many invalid messages the site answers: a token bucket on the clock.

Every invalid message gets its `rejected` while they come at most `rate_per_s` a second
(after a burst of `burst`); beyond, the rest go unanswered and are counted, and the next
`rejected` says how many (`note()`). A flood of junk then costs neither the store (every
answer is stored) nor the outbox (a valid event's `received` must not wait behind thousands
of rejections) nor the log.
"""

from __future__ import annotations

RATE_PER_S = 10.0
"""Rejections answered per second, sustained."""

BURST = 100
"""Rejections answered at once before the rate applies (a grid's batch of bad messages)."""


class RejectionBudget:
    """Decides which invalid messages are answered; counts those that are not."""

    def __init__(self, rate_per_s: float = RATE_PER_S, burst: int = BURST) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._at: float | None = None
        self.unanswered = 0
        """Messages left unanswered since the last `rejected` (over the rate, or dropped
        unread by the link)."""
        self.unanswered_total = 0

    def allow(self, now_s: float) -> bool:
        """Whether an invalid message arriving at `now_s` (monotonic) is answered; if not,
        it is counted."""
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now_s - self._at) * self.rate_per_s)
        self._at = now_s
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.count_unanswered(1)
        return False

    def count_unanswered(self, n: int) -> None:
        """`n` messages went unanswered (e.g. dropped by the link with its inbox full)."""
        self.unanswered += n
        self.unanswered_total += n

    def note(self) -> str:
        """The sentence the next `rejected` adds to its reason ('' if none went unanswered);
        the count starts again."""
        n, self.unanswered = self.unanswered, 0
        if not n:
            return ""
        return (
            f" {n} more message{'s were' if n != 1 else ' was'} not answered since the last"
            f" rejected (over {self.rate_per_s:g} rejections a second, or dropped unread)."
        )
