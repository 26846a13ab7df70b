"""Issue 14's acceptance for OpenADR 3.1: the real agent on the small simulated site, on the
virtual clock, with its OpenADR 3.1 VEN polling the spec-validated test VTN (and the native
MQTT contract beside it, through a real Mosquitto, which also carries the VTN's MQTT
notifier). A cap event created on the VTN is found,
carried out (the site's import under the cap in each interval) and reported as its
descriptors ask, in every interval and finally; every body either way is valid against
openadr3.yaml."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.clock import VirtualClock
from tests.conftest import Broker
from tests.grid.helpers import NOW
from tests.grid.live import advance_until
from tests.oadr3.live import VEN_NAME, cap_event, meter_kw, oadr3_site, program, running_agent
from tests.oadr3_vtn.server import mqtt_notifier, serve
from vpp.site import BrokerConfig

CAPS_KW = [115.0, 110.0]
STEP = timedelta(minutes=10)


@pytest.mark.timeout(240)
async def test_cap_event_from_the_vtn_is_carried_out_and_reported(
    mosquitto: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    store = tmp_path / "s.sqlite"
    with serve() as vtn, mqtt_notifier(vtn, mosquitto.host, mosquitto.port):
        site = oadr3_site(vtn, monkeypatch)
        async with running_agent(site, clock, broker, store) as live:
            agent, ven, grid = live.agent, live.ven, live.grid
            # The program and event appear after the VEN started: it must pick them up.
            now = clock.now()
            start = (now + timedelta(minutes=5)).replace(second=0, microsecond=0)
            prog = program(vtn)
            event = cap_event(vtn, prog["id"], start, CAPS_KW, duration=STEP)
            native = f"oadr3.{event['id']}"
            end = start + STEP * len(CAPS_KW)
            await advance_until(
                clock,
                lambda: any(r["status"] == "opt_in" for r in agent.store.responses(native)),
                120,
            )
            await advance_until(
                clock,
                lambda: any(
                    r["reportName"].endswith("final") for r in vtn.objects["reports"].values()
                ),
                virtual_s=(end - clock.now()).total_seconds() + 600,
                step_s=5.0,
            )
            # The native contract worked alongside: telemetry kept coming over MQTT.
            assert len(grid.telemetry) > 10

        # Registered as the spec says: the VEN object created by the VEN, the site resource.
        (ven_obj,) = vtn.objects["vens"].values()
        assert ven_obj["venName"] == VEN_NAME
        posted_ven = next(e for e in vtn.exchanges if e.method == "POST" and e.path == "/vens")
        assert posted_ven.body["objectType"] == "VEN_VEN_REQUEST"
        (resource,) = vtn.objects["resources"].values()
        assert resource["venID"] == ven_obj["id"] and resource["resourceName"] == site.id
        attrs = {a["type"]: a["values"] for a in resource["attributes"]}
        assert attrs["MAX_POWER_CONSUMPTION"] == [400.0]
        # Every list request asked at most 50 and filtered by targets.
        lists = [
            e for e in vtn.exchanges if e.method == "GET" and e.path in ("/events", "/programs")
        ]
        assert lists and all(
            "limit=50" in e.query and f"targets={VEN_NAME}" in e.query for e in lists
        )

        # Carried out: the site's import under the cap in each interval.
        for i, cap in enumerate(CAPS_KW):
            a = start + STEP * i
            minutes = meter_kw(store, a, a + STEP)
            assert len(minutes) >= 9
            assert math.fsum(minutes) / len(minutes) <= cap, (i, minutes)
            assert max(minutes) <= cap + 5.0, (i, minutes)  # no minute far over it

        # Reported as the descriptors ask, every interval and a final one.
        reports = sorted(vtn.objects["reports"].values(), key=lambda r: r["createdDateTime"])
        assert all(r["eventID"] == event["id"] and r["clientName"] == VEN_NAME for r in reports)
        final = [r for r in reports if r["reportName"].endswith("final")]
        partial = [r for r in reports if not r["reportName"].endswith("final")]
        assert len(final) == 1
        seen_ids = [iv["id"] for r in partial for iv in r["resources"][0]["intervals"]]
        assert seen_ids == [10, 11]  # each interval once, after it ended, with the event's ids
        for r in [*partial, *final]:
            assert {(d["payloadType"], d["units"]) for d in r["payloadDescriptors"]} == {
                ("USAGE", "KWH"),
                ("DEMAND", "KW"),
                ("BASELINE", "KW"),
            }
            for iv in r["resources"][0]["intervals"]:
                values = {p["type"]: p["values"][0] for p in iv["payloads"]}
                assert set(values) == {"USAGE", "DEMAND", "BASELINE"}
                cap = CAPS_KW[iv["id"] - 10]
                assert values["DEMAND"] <= cap
                assert values["USAGE"] == pytest.approx(values["DEMAND"] / 6, rel=1e-6)
                assert values["BASELINE"] > cap  # the cap bound: without it, more import
        assert [iv["id"] for iv in final[0]["resources"][0]["intervals"]] == [10, 11]
        # Every body, request and response, valid against openadr3.yaml.
        assert vtn.bad_exchanges() == []
        assert all(e.status < 400 for e in vtn.exchanges), [
            (e.method, e.path, e.status) for e in vtn.exchanges if e.status >= 400
        ]
        assert ven.tokens.fetched == 1  # cached
        assert ven.notified >= 1  # the VTN's MQTT notifier told of the program and event
        assert datetime.fromisoformat(
            final[0]["createdDateTime"].replace("Z", "+00:00")
        ) <= datetime.now(UTC)
