"""The aggregator service (`vpp aggregate`): wires the district's grid link (a site's
MqttLink under the district id: events in; responses, status with last will, telemetry,
reports and the district's offer out), the sites' link, the fleet book, the district's
events and the store; runs until stopped.

Every `telemetry_s` it publishes the district's telemetry (the sum of the member sites'
latest import), its offer when a site's changed (vpp.fleet.offer_sum) or when the grid asks
(`PREFIX/DISTRICT/offer_requests`, answered with its `request_id`), asks a site whose offer
is missing or about to expire for a fresh one, and follows the live events
(vpp.fleet.district.DistrictEvents.tick).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from pathlib import Path

import structlog

from devices.clock import Clock
from vpp.fleet.book import FleetBook
from vpp.fleet.config import FleetConfig
from vpp.fleet.district import DistrictEvents
from vpp.fleet.downlink import SiteLink
from vpp.fleet.offer_sum import district_offer
from vpp.fleet.period import every
from vpp.fleet.store import FleetStore
from vpp.grid.messages import Telemetry
from vpp.grid.offers import OfferRequest
from vpp.grid.parse import MessageError, parse_message
from vpp.mqtt_link import MqttLink
from vpp.outbox import Lane
from vpp.store.store import Store

log = structlog.get_logger(__name__)

OFFER_REFRESH = timedelta(minutes=5)
"""A site whose offer expires within this is asked for a fresh one (at most this often)."""


class Aggregator:
    """One district's aggregator on `clock` (see the module docstring)."""

    def __init__(self, fleet: FleetConfig, clock: Clock, *, settlement: Path | None = None) -> None:
        self.fleet = fleet
        self.clock = clock
        self.store = FleetStore(fleet.store)
        self._outbox_store = Store(fleet.store.with_suffix(".outbox.sqlite"))
        self.book = FleetBook([s.site_id for s in fleet.sites], fleet.broker.prefix)
        self.up = MqttLink(fleet.broker, fleet.district_id, clock, store=self._outbox_store)
        self.down = SiteLink(
            fleet.broker,
            fleet.district_id,
            clock,
            self._on_site_message,
            extra_filters=(self.up.topics.offer_requests.name,),
            sites=len(fleet.sites),
        )
        self._asked: dict[str, datetime] = {}  # site id → when we last asked it for an offer
        self.events = DistrictEvents(
            fleet, clock, self.store, self.book, self.up, self.down, settlement
        )

    def _on_site_message(self, topic: str, payload: bytes) -> None:
        if topic == self.up.topics.offer_requests.name:
            try:
                request = parse_message(OfferRequest, payload)
            except MessageError as e:
                log.warning("fleet_bad_offer_request", error=str(e)[:300])
                return
            self._publish_offer(request.request_id)
            return
        msg = self.book.take(topic, payload, self.clock.now())
        if msg is not None:
            self.events.on_site_message(msg)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Serve until `stop` is set (or the task is cancelled: a kill, state kept)."""
        stop = stop or asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self.up.run(), name="district-link"),
                    tg.create_task(self.down.run(), name="sites-link"),
                    tg.create_task(self._receive(), name="district-events"),
                    tg.create_task(self._tick(), name="district-tick"),
                ]
                await stop.wait()
                await self.down.drain()
                await self.up.close()
                for t in tasks:
                    t.cancel()
        finally:
            self.store.close()
            self._outbox_store.close()

    async def _receive(self) -> None:
        await self.up.connected.wait()
        while True:
            msg = await self.up.receive()
            self.events.handle(msg.payload)

    async def _tick(self) -> None:
        async for _ in every(self.clock, self.fleet.telemetry_s):
            try:
                self._publish_telemetry()
                if self.book.offers_changed:
                    self.book.offers_changed = False
                    self._publish_offer(None)
                self._refresh_offers()
                self.events.tick()
            except Exception:  # one bad tick never ends the aggregator
                log.exception("fleet_tick_failed")

    def _publish_telemetry(self) -> None:
        imports = [s.import_kw for s in self.book.sites.values() if s.import_kw is not None]
        t = Telemetry(
            ts=self.clock.now(),
            site_import_kw=round(sum(imports), 3) if imports else None,
            devices={},
        )
        self.up.send_telemetry(t.payload())

    def _publish_offer(self, request_id: str | None) -> None:
        offers = [s.offer for s in self.book.sites.values() if s.offer is not None]
        offer = district_offer(self.fleet.district_id, offers, self.clock.now(), request_id)
        if offer is None:
            return
        topic = self.up.topics.offers
        self.up.publish_nowait(
            topic.name, offer.to_json(), qos=topic.qos, retain=True, lane=Lane.LATEST
        )

    def _refresh_offers(self) -> None:
        """Ask each site whose offer is missing or expires within OFFER_REFRESH for a fresh
        one, at most once per OFFER_REFRESH."""
        now = self.clock.now()
        for site_id, info in self.book.sites.items():
            if info.offer is not None and info.offer.valid_until > now + OFFER_REFRESH:
                continue
            if now - self._asked.get(site_id, now - 2 * OFFER_REFRESH) < OFFER_REFRESH:
                continue
            self._asked[site_id] = now
            rid = f"{self.fleet.district_id}-{int(now.timestamp())}"[:64]
            self.down.request_offer(site_id, OfferRequest(request_id=rid, ts=now))


async def run_until(
    fleet: FleetConfig, clock: Clock, stop: asyncio.Event, settlement: Path | None
) -> None:
    """`vpp aggregate`'s body: the aggregator until `stop`."""
    agg = Aggregator(fleet, clock, settlement=settlement)
    with contextlib.suppress(asyncio.CancelledError):
        await agg.run(stop)
