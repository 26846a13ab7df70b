"""Invalid messages are answered at a capped rate; the next `rejected` counts the rest; a
valid event is answered `received` however many invalid ones came before it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from devices.clock import VirtualClock
from tests.grid.helpers import NOW, event_dict, interval, payload
from vpp.dr.events import EventManager
from vpp.dr.rejections import RejectionBudget
from vpp.mqtt_link import MqttLink
from vpp.site import BrokerConfig
from vpp.store.store import Store


def test_rejections_at_a_capped_rate_and_the_rest_counted(tmp_path: Path) -> None:
    async def go() -> list[dict[str, object]]:
        clock = VirtualClock(NOW)
        store = Store(tmp_path / "s.sqlite")
        link = MqttLink(BrokerConfig(), "s1", clock, subscriptions=[])  # never connected
        events = EventManager(clock, store, link, rejections=RejectionBudget(10, burst=20))
        for _ in range(500):  # all at one instant: the burst is answered, the rest counted
            events.handle(b"{not json", likely_event=False)
        for _ in range(100):  # valid-looking but invalid: parsed, over the rate counted
            events.handle(payload(event_dict(v=2)))
        start = NOW.replace(hour=7).isoformat()
        events.handle(payload(event_dict(event_id="real", intervals=[interval(start)])))
        await clock.sleep(1.0)  # 10 more answers' worth of budget
        for _ in range(30):
            events.handle(b"{not json", likely_event=False, dropped=5)
        assert events.rejected == 630
        return store.responses()

    responses = asyncio.run(go())
    rejected = [r for r in responses if r["status"] == "rejected"]
    assert len(rejected) == 20 + 10
    assert [r["status"] for r in responses if r["event_id"] == "real"] == ["received"]
    # The first answer after the burst counts those left unanswered: 480 + 100 over the
    # rate, then 5 dropped unread by the link.
    assert "585 more messages were not answered" in str(rejected[20]["reason"])
    assert str(rejected[20]["reason"]).startswith("Invalid event message: not JSON")
    # From then on each counts those since the one before (here 5 dropped each).
    assert "5 more messages were not answered" in str(rejected[21]["reason"])
    assert all("not answered" not in str(r["reason"]) for r in rejected[:20])
    assert all(len(str(r["reason"])) <= 1000 for r in rejected)
