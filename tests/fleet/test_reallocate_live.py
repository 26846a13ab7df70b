"""Real-time follow-up through a real Mosquitto on the virtual clock: a site that opts out,
one whose agent goes offline mid-event and one that falls behind have their part
re-allocated to the others, with modifications, from the next interval (a site gone: from
now on, the running interval's remainder too, for the sites already acting); the district
delivers its request again within two intervals."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Broker
from tests.fleet.live import FIVE, NOW, advance, curtail, district, specs


async def test_opt_out_and_offline_site_are_reallocated_with_modifications(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """100 kW over b1..b5 (40 kW each, costs 1..5). b2 opts out: from the next interval its
    40 kW go to b3 (a modification: 20 → 40) and b4 (a new event). In interval 2 b1's agent
    dies (the broker sends its last will): b4, already acting, takes 40 from then on (the
    rest of interval 2 too: a modification needs no notice) and b5 20 from interval 3 (a new
    event, after its notice); b1 keeps its 40 of interval 2 (it delivered them until then).
    The district's report shows 100 kW delivered again in interval 3 (within two intervals
    of the failure); interval 2, in which b1 went away, is short (b5 could not join in it)."""
    sites = specs()
    sites[1].opt_out = True
    async with district(mosquitto, tmp_path, sites) as d:
        start = NOW + 2 * FIVE  # intervals 06:10, 06:15, 06:20, 06:25, 06:30, 06:35
        await d.ask(curtail("d-2", 100.0, start, n=6), "d-2")
        # b2's opt_out is re-allocated before the event starts (from its first interval).
        await advance(d.clock, lambda: bool(d.emu.sites["b4"].received), virtual_s=120)
        assert d.values("b2") == [[40.0] * 6]
        assert d.values("b3")[-1] == [40.0] * 6
        assert [e.modification for e in d.emu.sites["b3"].received] == [0, 1]
        assert d.values("b4") == [[20.0] * 6]

        await advance(d.clock, lambda: d.clock.now() >= start + 2 * FIVE + FIVE / 5)
        await d.emu.take_offline("b1", crash=True)  # its last will says offline
        await advance(d.clock, lambda: bool(d.emu.sites["b5"].received), virtual_s=120)
        assert d.values("b4")[-1] == [20.0, 20.0, 40.0, 40.0, 40.0, 40.0]
        assert d.emu.sites["b4"].received[-1].modification == 1
        assert d.values("b5") == [[0.0, 0.0, 0.0, 20.0, 20.0, 20.0]]

        await advance(d.clock, lambda: "completed" in d.grid.statuses("d-2"), virtual_s=3600)
        delivered = [iv["delivered_kw"] for iv in d.grid.reports[-1]["intervals"]]
        assert delivered[0] >= 95.0 and delivered[1] >= 95.0
        assert delivered[2] < 95.0  # b1 left during it
        assert all(x >= 95.0 for x in delivered[3:]), delivered


async def test_site_falling_behind_is_topped_up_by_others(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """b1 delivers 30 % of its 40 kW from interval 1 on: after a control period (60 s) of
    telemetry short of 90 %, the district counts 12 kW of it and asks the rest of the next
    cheapest: b3 20 → 40 kW (a modification) and b4 8 kW (a new event), from interval 2;
    the district is back at 100 kW within two intervals."""
    async with district(mosquitto, tmp_path, specs(4)) as d:
        start = NOW + 2 * FIVE
        await d.ask(curtail("d-3", 100.0, start, n=5), "d-3")
        await advance(d.clock, lambda: d.clock.now() >= start + FIVE)
        d.emu.sites["b1"].spec.delivery = 0.3
        await advance(d.clock, lambda: bool(d.emu.sites["b4"].received), virtual_s=300)
        assert d.values("b1") == [[40.0] * 5]
        assert d.values("b3")[-1] == [20.0, 20.0, 40.0, 40.0, 40.0]
        assert d.emu.sites["b3"].received[-1].modification == 1
        assert d.values("b4") == [[0.0, 0.0, 8.0, 8.0, 8.0]]
        await advance(d.clock, lambda: "completed" in d.grid.statuses("d-3"), virtual_s=3600)
        delivered = [iv["delivered_kw"] for iv in d.grid.reports[-1]["intervals"]]
        assert delivered[0] >= 95.0 and delivered[1] < 95.0
        assert all(x >= 95.0 for x in delivered[2:]), delivered
