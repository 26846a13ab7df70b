"""What the agent's control cycle asks of a controller (the DR controller is one).

The composition root (vpp.service) builds the controller with its collaborators and hands it
to the agent, which calls it at fixed points of each cycle:

    snapshot → after_snapshot → plan_step, proposals → arbiter → on_target → dispatch →
    writes → on_not_following (when devices stopped following)

and runs its `tasks()` alongside its own loops.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import Any, Protocol

from vpp.control.arbiter import Proposal
from vpp.control.types import PlanStep, Snapshot, Target


class Controller(Protocol):
    """A control concern that plans, proposes targets and follows up on the outcome."""

    def tasks(self) -> Sequence[Coroutine[Any, Any, None]]:
        """Its own loops (e.g. grid inbox, planning), run until the agent stops."""
        ...

    def after_snapshot(self, snap: Snapshot) -> None:
        """The cycle's readings, before anything is decided (reports, stale-plan checks)."""
        ...

    def plan_step(self, snap: Snapshot) -> PlanStep:
        """The plan's setpoints for the current step (empty: no plan)."""
        ...

    def proposals(self, snap: Snapshot) -> Sequence[Proposal]:
        """Import ceilings it wants this cycle, for the arbiter."""
        ...

    def on_target(self, target: Target) -> None:
        """The arbiter's decision for this cycle."""
        ...

    def on_not_following(self, device_ids: list[str]) -> None:
        """Devices newly left out of control (offline, not following): re-plan without them."""
        ...

    def settlement_baseline_kw(self, now: datetime) -> float | None:
        """The settlement baseline at `now` (kW), while the site acts in an event; None
        otherwise (telemetry's extension `baseline_kw`)."""
        ...


class NoController:
    """Nothing planned, nothing proposed: the site limit governs."""

    def tasks(self) -> Sequence[Coroutine[Any, Any, None]]:
        return ()

    def after_snapshot(self, snap: Snapshot) -> None:
        pass

    def plan_step(self, snap: Snapshot) -> PlanStep:
        return PlanStep()

    def proposals(self, snap: Snapshot) -> Sequence[Proposal]:
        return ()

    def on_target(self, target: Target) -> None:
        pass

    def on_not_following(self, device_ids: list[str]) -> None:
        pass

    def settlement_baseline_kw(self, now: datetime) -> float | None:
        return None
