"""The aggregator with five emulated sites through a real Mosquitto, on the virtual clock:
a district curtailment split by cost, answered and reported upward as a site would, settled
per interval; a district cap; a malformed district event rejected as a site rejects it."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.conftest import Broker
from tests.fleet.live import DISTRICT, FIVE, NOW, advance, curtail, district, specs
from vpp.grid.offers import OfferRequest


async def test_district_curtailment_is_split_by_cost_reported_and_settled(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """100 kW over sites of 40 kW at costs 1..5: b1 40, b2 40, b3 20, b4 and b5 nothing.
    The grid sees received then opt_in (100 kW expected per interval), the district's
    telemetry (the sum of the sites' import) and offer (the sum of theirs), one report per
    ended interval whose baseline is the sum of the sites' baselines and whose delivered
    is 100 kW, then completed; the settlement CSV has a row per site and interval and the
    district's."""
    async with district(mosquitto, tmp_path, specs()) as d:
        g, clock = d.grid, d.clock
        await advance(clock, lambda: len(g.telemetry) >= 2)
        assert g.telemetry[-1]["site_import_kw"] == 1000.0
        assert g.offers[-1]["site_id"] == DISTRICT
        assert g.offers[-1]["windows"][0]["curtail_kw"] == 200.0  # 5 × 40 kW

        await d.ask(curtail("d-1", 100.0, NOW + 2 * FIVE), "d-1")
        assert g.statuses("d-1") == ["received", "opt_in"]
        assert g.responses[-1]["expected_kw"] == [100.0] * 4
        await advance(clock, lambda: sum(bool(e.received) for e in d.emu.sites.values()) >= 3)
        asked = {s: v[-1][0] for s in d.emu.sites if (v := d.values(s))}
        assert asked == {"b1": 40.0, "b2": 40.0, "b3": 20.0}

        await advance(clock, lambda: "completed" in g.statuses("d-1"), virtual_s=3600)
        assert [len(r["intervals"]) for r in g.reports] == [1, 2, 3, 4]
        final = g.reports[-1]
        for iv in final["intervals"]:
            assert iv["requested_kw"] == 100.0
            assert iv["baseline_kw"] == 600.0  # b1 + b2 + b3
            assert iv["delivered_kw"] == 100.0
            assert iv["actual_kw"] == 500.0
        assert final["delivered_ratio"] == 1.0
    rows = list(csv.DictReader((tmp_path / "settlement-d-1.csv").open()))
    assert len(rows) == 4 * 4  # 3 sites and the district per interval
    b3 = [r for r in rows if r["site_id"] == "b3"]
    assert [float(r["allocated_kw"]) for r in b3] == [20.0] * 4
    assert all(float(r["delivered_kw"]) == 20.0 and r["source"] == "report" for r in b3)
    district_rows = [r for r in rows if r["site_id"] == DISTRICT]
    assert all(float(r["shortfall_kw"]) == 0.0 for r in district_rows)


async def test_district_cap_becomes_site_curtailments(mosquitto: Broker, tmp_path: Path) -> None:
    """A cap of 870 kW on a district importing 1 000 kW asks 130 kW of the sites (b1 40, b2
    40, b3 40, b4 10, as curtail_kw events); the district expects to hold the cap."""
    async with district(mosquitto, tmp_path, specs()) as d:
        await advance(d.clock, lambda: len(d.grid.telemetry) >= 1)
        cap = json.loads(curtail("d-cap", 870.0, NOW + 2 * FIVE, n=2))
        cap["signal"] = "import_cap_kw"
        await d.ask(json.dumps(cap).encode(), "d-cap")
        assert d.grid.statuses("d-cap") == ["received", "opt_in"]
        assert d.grid.responses[-1]["expected_kw"] == [870.0, 870.0]
        await advance(d.clock, lambda: bool(d.emu.sites["b4"].received))
        assert {s: v[-1] for s in d.emu.sites if (v := d.values(s))} == {
            "b1": [40.0, 40.0],
            "b2": [40.0, 40.0],
            "b3": [40.0, 40.0],
            "b4": [10.0, 10.0],
        }
        assert all(e.signal == "curtail_kw" for e in d.emu.sites["b4"].received)


async def test_malformed_district_event_is_rejected_like_a_site_does(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """A district event with a negative duration and one not JSON: each gets one `rejected`
    naming the field (the same answer vpp.grid.parse gives a site); no site gets an event.
    Malformed messages from the sites' side (an offer, telemetry, a response, an offer
    request) are left out; the aggregator goes on to answer a valid event."""
    async with district(mosquitto, tmp_path, specs(2)) as d:
        g = d.grid
        bad = json.loads(curtail("d-bad", 50.0, NOW + FIVE))
        bad["intervals"][1]["duration"] = "-PT5M"
        await g.send(json.dumps(bad).encode())
        await g.send(b"{not json")
        await advance(d.clock, lambda: len(g.responses) >= 2, virtual_s=60)
        first, second = g.responses[:2]
        assert first["status"] == "rejected" and first["event_id"] == "d-bad"
        assert first["errors"][0]["loc"] == "intervals[1].duration"
        assert second["status"] == "rejected" and second["event_id"] is None
        assert all(not e.received for e in d.emu.sites.values())
        # Junk from the sites' side is logged and left out; the aggregator goes on.
        for topic, junk in [
            ("vpp/b1/offers", b'{"v": 1, "site_id": "b1"}'),
            ("vpp/b1/telemetry", b"\xff\xfe"),
            ("vpp/b2/responses", b'{"status": "opt_in"}'),
            (f"vpp/{DISTRICT}/offer_requests", b"[]"),
        ]:
            await g.client.publish(topic, junk, qos=1)
        await advance(d.clock, lambda: d.agg.book.bad_messages >= 3, virtual_s=30)
        assert d.agg.book.sites["b1"].offer is not None  # the last good one is kept
        await d.ask(curtail("d-ok", 30.0, NOW + 2 * FIVE), "d-ok")
        assert g.statuses("d-ok") == ["received", "opt_in"]


async def test_offers_are_refreshed_and_the_district_answers_offer_requests(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """Sites whose offers expire after 20 min are asked for fresh ones 5 min before (each
    then has published two); an offer request to the district is answered with the sum of
    the sites' offers, echoing its request_id."""
    sites = specs(2, horizon=timedelta(minutes=20))
    async with district(mosquitto, tmp_path, sites) as d:
        await advance(d.clock, lambda: all(e.offers_sent >= 2 for e in d.emu.sites.values()))
        assert d.clock.now() >= NOW + timedelta(minutes=15)
        request = OfferRequest(request_id="grid-ask-1", ts=d.clock.now())
        await d.grid.client.publish(f"vpp/{DISTRICT}/offer_requests", request.to_json(), qos=1)

        # The district's own periodic offer may come right after the answer: look for it.
        def answers() -> list[dict[str, Any]]:
            return [o for o in d.grid.offers if o.get("request_id") == "grid-ask-1"]

        await advance(d.clock, lambda: bool(answers()))
        (answer,) = answers()
        assert answer["site_id"] == DISTRICT
        assert answer["windows"][0]["curtail_kw"] == 80.0


async def test_district_modification_and_cancel_reach_the_sites(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """A higher modification (100 → 140 kW) is answered received, opt_in (140 expected) and
    sent down as modifications (b3 20 → 40, b4 a new event of 20); a cancel is answered
    `cancelled` and every site taking part gets a cancel, one modification higher."""
    async with district(mosquitto, tmp_path, specs()) as d:
        start = NOW + 3 * FIVE
        await d.ask(curtail("d-5", 100.0, start, n=2), "d-5")
        await advance(d.clock, lambda: bool(d.emu.sites["b3"].received))
        await d.ask(curtail("d-5", 140.0, start, n=2, mod=1), "d-5")
        assert d.grid.statuses("d-5") == ["received", "opt_in", "received", "opt_in"]
        assert d.grid.responses[-1]["expected_kw"] == [140.0, 140.0]
        await advance(d.clock, lambda: bool(d.emu.sites["b4"].received))
        assert d.values("b3") == [[20.0, 20.0], [40.0, 40.0]]
        assert d.values("b4") == [[20.0, 20.0]]
        assert [e.modification for e in d.emu.sites["b3"].received] == [0, 1]

        cancel = json.loads(curtail("d-5", 0.0, start, n=1, mod=2))
        cancel["cancelled"] = True
        await d.grid.send(json.dumps(cancel).encode())
        await advance(d.clock, lambda: "cancelled" in d.grid.statuses("d-5"), virtual_s=60)
        await advance(
            d.clock, lambda: all(d.emu.sites[s].received[-1].cancelled for s in ("b1", "b4"))
        )
        for s in ("b1", "b2", "b3", "b4"):
            last = d.emu.sites[s].received[-1]
            assert last.cancelled, s
        assert [e.modification for e in d.emu.sites["b3"].received] == [0, 1, 2]
        assert not d.emu.sites["b5"].received
