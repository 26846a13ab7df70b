"""The site's offers on the wire: one after each plan period, and one at once for each valid
offer request (echoing its `request_id`). A malformed request is one logged error naming the
field, and nothing else: the contract has no answer for it (docs/grid-messages.md)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import timedelta

import structlog

from devices.clock import Clock
from vpp.dr.offers import OfferInputs, OfferMaker
from vpp.grid.offer_link import OfferChannel
from vpp.grid.offers import Offer, OfferRequest, OfferWindow
from vpp.grid.parse import MessageError, parse_message
from vpp.site import Site

log = structlog.get_logger(__name__)


class OfferService:
    """Publishes the offers `maker` computes through `channel`; `inputs()` reads the site
    now (None before its first readings)."""

    def __init__(
        self,
        site: Site,
        clock: Clock,
        channel: OfferChannel,
        maker: OfferMaker,
        inputs: Callable[[], OfferInputs | None],
    ) -> None:
        self.site = site
        self.clock = clock
        self.channel = channel
        self.maker = maker
        self._inputs = inputs
        self._wake = asyncio.Event()
        self._period_due = False
        self._requests: list[str] = []
        self._ids = itertools.count(1)
        self.published: list[Offer] = []
        """The offers sent since start, the newest last (the last few only)."""
        self.rejected = 0
        """Malformed offer requests since start."""

    def plan_period_done(self) -> None:
        """The controller planned for a new plan period: publish the period's offer."""
        self._period_due = True
        self._wake.set()

    async def run(self) -> None:
        """Read requests and publish offers, until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._read_requests())
            tg.create_task(self._publish_loop())

    async def _read_requests(self) -> None:
        while True:
            payload = await self.channel.receive_offer_request()
            try:
                request = parse_message(OfferRequest, payload)
            except MessageError as exc:
                self.rejected += 1
                first = exc.errors[0]
                more = f" (and {len(exc.errors) - 1} more)" if len(exc.errors) > 1 else ""
                log.error("offer_request_invalid", field=first.loc, error=f"{first.msg}{more}")
                continue
            log.info("offer_requested", request_id=request.request_id)
            self._requests.append(request.request_id)
            self._wake.set()

    async def _publish_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            requests, self._requests = self._requests, []
            periodic, self._period_due = self._period_due, False
            inputs = self._inputs()
            if inputs is None:  # nothing read yet: answered after the first plan
                self._requests = requests + self._requests
                self._period_due = self._period_due or periodic
                continue
            try:
                # Simulated time stands still while the offer is made (its solves yield).
                async with self.clock.hold():
                    windows = await self.maker.windows(inputs)
            except Exception:  # no offer this time; the next period (or request) tries again
                log.exception("offer_failed")
                continue
            answers: list[str | None] = list(requests)
            if periodic and not answers:
                answers = [None]
            for request_id in answers:
                self._publish(windows, request_id)

    def _publish(self, windows: list[OfferWindow], request_id: str | None) -> None:
        now = self.clock.now()
        config = self.site.config
        offer = Offer(
            site_id=self.site.id,
            offer_id=f"{self.site.id}-{now:%Y%m%dT%H%M%S}-{next(self._ids)}",
            request_id=request_id,
            created=now,
            valid_until=now + 2 * timedelta(seconds=config.periods.plan_s),
            notice=timedelta(minutes=config.grid.offers.notice_min),
            min_rest=timedelta(0),  # the windows are planned with the loads' rests as they are
            windows=windows,
        )
        self.channel.send_offer(offer)
        self.published = [*self.published[-9:], offer]
        log.info("offer_published", offer_id=offer.offer_id, request_id=request_id)
