"""What the OpenADR 3.1 VEN keeps across a restart, in the store's `link_state` table: its
VEN and resource ids, and per VTN event the native event it became (id, modification, the
digest of what the VTN said, the interval ids and report descriptors) and what was reported,
so a restart neither repeats a modification as new nor posts a report twice. Reports not yet
accepted by the VTN wait here too."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from devices.clock import Clock
from vpp.store.store import Store

LINK = "openadr3"


@dataclass
class TrackedEvent:
    """One VTN event as this VEN follows it."""

    native_id: str
    modification: int
    digest: str
    first_seen: str
    """When the VEN first saw it (RFC 3339): "now" for a start of 0001-01-01."""
    native: dict[str, Any] | None = None
    """The native event last sent to the agent; None while the event was never mappable."""
    interval_ids: list[int] = field(default_factory=list)
    descriptors: list[dict[str, Any]] = field(default_factory=list)
    cancelled: bool = False
    reported: dict[str, int] = field(default_factory=dict)
    """Per native modification, how many intervals were posted."""
    final: list[int] = field(default_factory=list)
    """Modifications whose final report was posted."""
    flexibility: list[int] = field(default_factory=list)
    """Modifications whose LOAD_SHED_DELTA_AVAILABLE was posted."""


class VenState:
    """The VEN's state, written through to `store` (None: in memory only, for tests)."""

    def __init__(self, store: Store | None, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        kept = store.link_state(LINK) if store is not None else {}
        self.ven_id: str | None = kept.get("ven_id")
        self.resource_id: str | None = kept.get("resource_id")
        self.events: dict[str, TrackedEvent] = {
            k: TrackedEvent(**v) for k, v in kept.get("events", {}).items()
        }
        self.pending: list[dict[str, Any]] = list(kept.get("pending", []))
        """Report bodies not yet accepted by the VTN, oldest first."""

    def by_native(self, native_id: str) -> tuple[str, TrackedEvent] | None:
        for oadr_id, tracked in self.events.items():
            if tracked.native_id == native_id:
                return oadr_id, tracked
        return None

    def save(self) -> None:
        if self.store is None:
            return
        now = self.clock.now()
        self.store.put_link_state(now, LINK, "ven_id", self.ven_id)
        self.store.put_link_state(now, LINK, "resource_id", self.resource_id)
        self.store.put_link_state(
            now, LINK, "events", {k: asdict(v) for k, v in self.events.items()}
        )
        self.store.put_link_state(now, LINK, "pending", self.pending)
