"""One snapshot per instant (vpp.drivers.SiteDevices.snapshot): the control cycle and the
telemetry look at the devices at the same 5-s instants, and share one snapshot while no
reading or health changed between their looks. A new reading, or a device going offline
without one, gives a new snapshot at once. Through a real pymodbus server on the virtual
clock."""

from __future__ import annotations

import uuid

from devices.clock import VirtualClock
from devices.profile import ModbusProfile, load_profile, profile_dir
from tests.devices.profile_server import ProfileServer
from tests.replay.helpers import ROOT
from vpp.drivers import SiteDevices
from vpp.site import parse_site


async def test_looks_at_one_instant_share_a_snapshot_until_a_device_changes() -> None:
    clock = VirtualClock()
    profile = load_profile(profile_dir() / "v2g-charger-modbus.yaml")
    assert isinstance(profile, ModbusProfile)
    server = await ProfileServer(profile, clock).start()
    raw = {
        "site_id": f"t{uuid.uuid4().hex[:8]}",
        "timezone": "UTC",
        "periods": {"poll_s": 5, "telemetry_s": 5, "control_s": 5},
        "devices": [
            {
                "id": "v2g1",
                "type": "ev_charger_v2g",
                "profile": "v2g-charger-modbus",
                "port": server.port,
                "limits": {"power_setpoint_kw": [-20, 20]},
            }
        ],
    }
    site = parse_site(raw, ROOT / "config" / "sites" / "test.yaml")
    devices = SiteDevices(site, clock, None)
    try:
        server.set("power_kw", 4.0)
        async with devices.poller:
            await clock.sleep(6)
            first = devices.snapshot()
            assert first.devices["v2g1"].usable
            assert first.devices["v2g1"].values["power_kw"] == 4.0
            assert devices.snapshot() is first  # the same instant, nothing changed
            assert devices.snapshot() == devices._take_snapshot()

            server.set("power_kw", 7.5)
            await clock.sleep(5)  # the next poll
            second = devices.snapshot()
            assert second is not first
            assert second.devices["v2g1"].values["power_kw"] == 7.5
            assert second.monotonic_s == first.monotonic_s + 5
            assert second == devices._take_snapshot()

            await server.stop()  # the next poll fails: a health change, no new reading
            await clock.sleep(5)
            third = devices.snapshot()
            assert third is not second
            assert not third.devices["v2g1"].usable
            assert third.devices["v2g1"].reason
            assert third == devices._take_snapshot()
    finally:
        await server.stop()
