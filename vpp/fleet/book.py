"""What the aggregator knows of each member site, from the sites' own messages: the latest
offer, whether its agent is online, its import (recent telemetry samples), its answers and
reports. `FleetBook.take` reads one message; a message that is not valid is logged and left
out (it never ends the aggregator)."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any, Literal, TypeVar

import structlog
from pydantic import BaseModel

from vpp.grid.messages import (
    ExtendedReport,
    ExtendedStatus,
    ExtendedTelemetry,
    Report,
    Response,
    Status,
    Telemetry,
)
from vpp.grid.offers import Offer
from vpp.grid.parse import MessageError, parse_message
from vpp.measure.contract import contract_report

M = TypeVar("M", bound=BaseModel)
log = structlog.get_logger(__name__)

Leaf = Literal["offers", "status", "telemetry", "responses", "reports", "metering"]
LEAVES: tuple[Leaf, ...] = ("offers", "status", "telemetry", "responses", "reports", "metering")
SAMPLES_KEPT = timedelta(hours=2)


@dataclass
class SiteInfo:
    """One member site as its messages show it."""

    site_id: str
    offer: Offer | None = None
    online: bool | None = None
    samples: deque[tuple[datetime, float]] = field(default_factory=deque)
    """(time, site_import_kw) of its recent telemetry."""
    stated: deque[tuple[datetime, float]] = field(default_factory=deque)
    """(time, baseline_kw) its telemetry stated: its settlement baseline then, while it
    acted in an event (the grid extension; sites without it state none)."""
    metered: deque[tuple[datetime, float]] = field(default_factory=deque)
    """(time, site_import_kw) from its meter's own feed (`PREFIX/SITE/metering`: the
    metering operator's, not the agent's), which goes on while its agent is down."""

    @property
    def import_kw(self) -> float | None:
        """Its latest import (kW), if any telemetry came."""
        return self.samples[-1][1] if self.samples else None

    def delivered_kw(
        self, reference_kw: float, start: datetime, end: datetime, *, metered: bool = False
    ) -> float | None:
        """Its reduction below `reference_kw` over (start, end] from its telemetry, counted
        only for the part of the span its samples cover (a site that went silent delivered
        nothing we can show); or from its meter's feed (`metered`: the mean of its readings,
        a meter does not go silent with the agent); None without samples."""
        samples = self.metered if metered else self.samples
        vals = [kw for t, kw in samples if start < t <= end]
        if not vals:
            return None
        covered = 1.0 if metered else _covers(samples, start, end)
        return (reference_kw - sum(vals) / len(vals)) * covered

    def covers(self, start: datetime, end: datetime) -> float:
        """The share of (start, end] its telemetry covers (0–1)."""
        return _covers(self.samples, start, end)

    def last_before(self, t: datetime) -> float | None:
        """Its last import sample at or before `t`."""
        before = [kw for ts, kw in self.samples if ts <= t]
        return before[-1] if before else None

    def stated_in(self, start: datetime, end: datetime) -> float | None:
        """Mean of the baselines its telemetry stated in (start, end], if any."""
        vals = [kw for t, kw in self.stated if start < t <= end]
        return sum(vals) / len(vals) if vals else None

    def imports_in(self, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
        """Its import samples in (start, end]: its telemetry's, else its meter feed's (its
        agent down)."""
        own = [(t, kw) for t, kw in self.samples if start < t <= end]
        return own or [(t, kw) for t, kw in self.metered if start < t <= end]


@dataclass(frozen=True)
class SiteMessage:
    """A valid answer or report of a site, for the aggregator to act on."""

    site_id: str
    leaf: Literal["responses", "reports"]
    message: Response | Report
    payload: dict[str, Any]


class FleetBook:
    """The member sites' latest state, by site id."""

    def __init__(self, members: list[str], prefix: str) -> None:
        self.sites = {s: SiteInfo(s) for s in members}
        self.prefix = prefix
        self.bad_messages = 0
        self.offers_changed = False
        """Set when an offer arrives; the aggregator clears it once it re-sums the offers."""

    def site_of(self, topic: str) -> tuple[str, Leaf] | None:
        """(site id, leaf) of a member site's topic, else None."""
        parts = topic.split("/")
        if len(parts) != 3 or parts[0] != self.prefix or parts[1] not in self.sites:
            return None
        leaf = parts[2]
        return (parts[1], leaf) if leaf in LEAVES else None

    def take(self, topic: str, payload: bytes, now: datetime) -> SiteMessage | None:
        """Read one message from a site's topic; answers and reports are returned."""
        where = self.site_of(topic)
        if where is None:
            return None
        site_id, leaf = where
        info = self.sites[site_id]
        try:
            if leaf == "offers":
                offer = parse_message(Offer, payload)
                if offer.site_id != site_id:
                    raise MessageError([])  # another site's offer on this topic
                info.offer = offer
                self.offers_changed = True
            elif leaf == "status":
                info.online = _either(Status, ExtendedStatus, payload).online
            elif leaf == "telemetry":
                kw, base = _telemetry(payload)
                if kw is not None:
                    _keep(info.samples, now, kw)
                if base is not None:
                    _keep(info.stated, now, base)
            elif leaf == "metering":
                m = parse_message(Telemetry, payload)
                if m.site_import_kw is not None:
                    _keep(info.metered, now, m.site_import_kw)
            elif leaf == "responses":
                r = parse_message(Response, payload)
                return SiteMessage(site_id, "responses", r, r.model_dump(mode="json"))
            else:
                rep = _either(Report, ExtendedReport, payload)
                return SiteMessage(site_id, "reports", rep, rep.model_dump(mode="json"))
        except MessageError as e:
            self.bad_messages += 1
            log.warning("fleet_bad_site_message", site=site_id, topic=topic, error=str(e)[:300])
        return None


def _covers(samples: deque[tuple[datetime, float]], start: datetime, end: datetime) -> float:
    """The share of (start, end] that `samples` cover: from the first to the last, plus the
    usual spacing between two (0 without samples)."""
    times = [t for t, _ in samples if start < t <= end]
    if not times:
        return 0.0
    gaps = sorted(b - a for a, b in pairwise(times))
    spacing = gaps[len(gaps) // 2] if gaps else end - start
    return min(1.0, (times[-1] - times[0] + spacing) / (end - start))


def _keep(samples: deque[tuple[datetime, float]], now: datetime, kw: float) -> None:
    samples.append((now, kw))
    while samples and samples[0][0] < now - SAMPLES_KEPT:
        samples.popleft()


def _telemetry(payload: bytes) -> tuple[float | None, float | None]:
    """(site_import_kw, baseline_kw) of a telemetry message, the contract's or with the
    extension (only that states a baseline); MessageError naming the contract's fields."""
    try:
        return parse_message(Telemetry, payload).site_import_kw, None
    except MessageError as first:
        try:
            ext = parse_message(ExtendedTelemetry, payload)
        except MessageError:
            raise first from None
    return ext.site_import_kw, ext.baseline_kw


def _either(plain: type[M], extended: type[BaseModel], payload: bytes) -> M:
    """The message as the contract's `plain` model, or as its `extended` one (a site with
    `grid.extensions: true`) read as plain; MessageError naming the contract's fields."""
    try:
        return parse_message(plain, payload)
    except MessageError as first:
        try:
            ext = parse_message(extended, payload)
        except MessageError:
            raise first from None
    data = ext.model_dump(mode="json")
    if plain is Report:
        data = contract_report(data)
    else:
        data = {k: v for k, v in data.items() if k in plain.model_fields}
        if "devices" in data:
            data["devices"] = {}
    return plain.model_validate_json(json.dumps(data))
