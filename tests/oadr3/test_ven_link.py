"""The OpenADR 3.1 VEN link alone against the test VTN, on the virtual clock: events changed
or deleted on the VTN become modifications and cancels, a restart repeats nothing, the token
is cached and renewed before it expires, targets filter what the VEN sees."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from devices.clock import VirtualClock
from tests.conftest import Broker
from tests.grid.helpers import NOW
from tests.grid.live import advance_until
from tests.oadr3.live import VEN_NAME, cap_event, oadr3_site, program
from tests.oadr3_vtn.app import Vtn
from tests.oadr3_vtn.server import BL_CLIENT, mqtt_notifier, serve
from vpp.grid.messages import Event as NativeEvent
from vpp.grid.oadr3.link import Oadr3Link
from vpp.grid.parse import parse_event
from vpp.store.store import Store


@asynccontextmanager
async def running(link: Oadr3Link) -> AsyncIterator[Oadr3Link]:
    task = asyncio.create_task(link.run())
    try:
        yield link
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert not task.done() or task.cancelled()


async def _next(link: Oadr3Link, clock: VirtualClock) -> dict[str, Any]:
    got: list[dict[str, Any]] = []

    async def take() -> None:
        got.append(json.loads((await link.receive()).payload))

    waiter = asyncio.create_task(take())
    await advance_until(clock, lambda: bool(got), 60)
    await waiter
    return got[0]


@pytest.mark.timeout(60)
async def test_changed_and_deleted_events_are_modifications_and_cancels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    with serve() as vtn:
        site = oadr3_site(vtn, monkeypatch, poll_s=2)
        store = Store(tmp_path / "s.sqlite")
        prog = program(vtn)
        start = NOW + timedelta(hours=1)
        ev = cap_event(vtn, prog["id"], start, [100.0, 90.0])
        native = f"oadr3.{ev['id']}"
        async with running(Oadr3Link(site, clock, store)) as link:
            first = await _next(link, clock)
            assert (first["event_id"], first["modification"]) == (native, 0)
            assert [i["value"] for i in first["intervals"]] == [100.0, 90.0]
            # A new modificationDateTime alone changes nothing; a new value is modification 1.
            body = {
                k: v
                for k, v in ev.items()
                if k not in ("id", "createdDateTime", "modificationDateTime", "objectType")
            }
            vtn.update("events", ev["id"], body)
            await advance_until(clock, lambda: link.polls >= 3, 30)
            assert link._inbox.empty()
            body["intervals"][1]["payloads"][0]["values"] = [80.0]
            vtn.update("events", ev["id"], body)
            second = await _next(link, clock)
            assert second["modification"] == 1
            assert [i["value"] for i in second["intervals"]] == [100.0, 80.0]
            vtn.delete("events", ev["id"])
            third = await _next(link, clock)
            assert third["modification"] == 2 and third["cancelled"] is True

        # A restart on the same store repeats nothing and keeps its VEN.
        ven_id = link.state.ven_id
        ev2 = cap_event(vtn, prog["id"], start, [70.0])
        async with running(Oadr3Link(site, clock, store)) as again:
            msg = await _next(again, clock)
            assert msg["event_id"] == f"oadr3.{ev2['id']}" and msg["modification"] == 0
            await advance_until(clock, lambda: again.polls >= 3, 30)
            assert again._inbox.empty()
            assert again.state.ven_id == ven_id
        assert len(vtn.objects["vens"]) == 1 and len(vtn.objects["resources"]) == 1
        # Events the VTN no longer lists are forgotten two days after their end.
        assert ev["id"] in again.state.events
        again.tracker.forget_old({ev2["id"]}, start + timedelta(days=1))
        assert ev["id"] in again.state.events
        again.tracker.forget_old({ev2["id"]}, start + timedelta(days=3))
        assert set(again.state.events) == {ev2["id"]}
        store.close()
    assert vtn.bad_exchanges() == []


@pytest.mark.timeout(60)
async def test_token_is_cached_and_renewed_before_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    with serve(Vtn(token_lifetime_s=100)) as vtn:
        site = oadr3_site(vtn, monkeypatch, poll_s=10)
        async with running(Oadr3Link(site, clock, None)) as link:
            await advance_until(clock, lambda: link.polls >= 8, 200, step_s=5)
            # 8 polls over ~70 s on one token; renewed at 80 s (80 % of 100 s), never refused.
            assert link.tokens.fetched == 1
            await advance_until(clock, lambda: link.polls >= 12, 200, step_s=5)
            assert link.tokens.fetched == 2
        assert all(e.status != 401 for e in vtn.exchanges)
        # Tokens forgotten by the VTN (a restart of it): a 401, a new token, the same request.
        vtn.tokens.clear()
        async with running(link) as same:
            before = same.polls
            await advance_until(clock, lambda: same.polls > before, 60)
        assert [e.status for e in vtn.exchanges if e.status == 401]
        assert link.tokens.fetched == 3


@pytest.mark.timeout(60)
async def test_targets_filter_events_and_unmappable_events_are_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    with serve() as vtn:
        site = oadr3_site(vtn, monkeypatch, poll_s=2)
        prog = program(vtn)
        other = cap_event(vtn, prog["id"], NOW + timedelta(hours=1), [50.0])
        vtn.update(
            "events",
            other["id"],
            {
                **{k: other[k] for k in ("programID", "intervalPeriod", "intervals")},
                "targets": ["someone-else"],
            },
        )
        export = vtn.create(
            "events",
            {
                "programID": prog["id"],
                "intervalPeriod": {
                    "start": (NOW + timedelta(hours=1)).isoformat(),
                    "duration": "PT1H",
                },
                "intervals": [{"id": 0, "payloads": [{"type": "EXPORT_PRICE", "values": [0.1]}]}],
            },
            BL_CLIENT[0],
        )
        mine = cap_event(vtn, prog["id"], NOW + timedelta(hours=2), [60.0])
        async with running(Oadr3Link(site, clock, None)) as link:
            msg = await _next(link, clock)
            assert msg["event_id"] == f"oadr3.{mine['id']}"
            await advance_until(clock, lambda: link.polls >= 3, 30)
            assert link._inbox.empty()
            assert other["id"] not in link.state.events
            assert link.state.events[export["id"]].native is None
    assert vtn.bad_exchanges() == []


@pytest.mark.timeout(60)
async def test_export_capacity_limit_and_ghg_become_export_cap_and_carbon_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    start = NOW + timedelta(hours=1)

    def event(payload_type: str, units: str, values: list[float]) -> dict[str, Any]:
        return vtn.create(
            "events",
            {
                "programID": prog["id"],
                "eventName": payload_type.lower(),
                "intervalPeriod": {"start": start.isoformat(), "duration": "PT15M"},
                "payloadDescriptors": [
                    {
                        "objectType": "EVENT_PAYLOAD_DESCRIPTOR",
                        "payloadType": payload_type,
                        "units": units,
                    }
                ],
                "intervals": [
                    {"id": i, "payloads": [{"type": payload_type, "values": [v]}]}
                    for i, v in enumerate(values)
                ],
                "targets": [VEN_NAME],
            },
            BL_CLIENT[0],
        )

    with serve() as vtn:
        site = oadr3_site(vtn, monkeypatch, poll_s=2)
        prog = program(vtn)
        cap = event("EXPORT_CAPACITY_LIMIT", "KW", [20.0, 0.0])
        ghg = event("GHG", "G_PER_KWH", [550.0])
        async with running(Oadr3Link(site, clock, None)) as link:
            got = {m["event_id"]: m for m in [await _next(link, clock), await _next(link, clock)]}
    assert vtn.bad_exchanges() == []
    exported = got[f"oadr3.{cap['id']}"]
    assert exported["signal"] == "export_cap_kw"
    assert [(i["start"], i["duration"], i["value"]) for i in exported["intervals"]] == [
        (start.isoformat(), "PT15M", 20.0),
        ((start + timedelta(minutes=15)).isoformat(), "PT15M", 0.0),
    ]
    carbon = got[f"oadr3.{ghg['id']}"]
    assert carbon["signal"] == "carbon"
    assert [i["value"] for i in carbon["intervals"]] == [0.55]
    # Both are events the site's own contract accepts.
    for native in (exported, carbon):
        assert isinstance(parse_event(json.dumps(native).encode(), NOW), NativeEvent)


@pytest.mark.timeout(60)
async def test_mqtt_notifier_wakes_the_poll_and_polling_stays_the_fallback(
    mosquitto: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    with serve() as vtn, mqtt_notifier(vtn, mosquitto.host, mosquitto.port):
        site = oadr3_site(vtn, monkeypatch, poll_s=600)
        prog = program(vtn)
        async with running(Oadr3Link(site, clock, None)) as link:
            await advance_until(clock, lambda: link.polls >= 1 and link.notifier is not None, 60)
            assert link.notifier is not None and link.notifier.topics == ["events/+"]
            await asyncio.sleep(0.2)  # wall time: the subscription reaches the broker
            seen_at = clock.now()
            ev = cap_event(vtn, prog["id"], NOW + timedelta(hours=1), [90.0])
            msg = await _next(link, clock)
            assert msg["event_id"] == f"oadr3.{ev['id']}"
            # Found by the notification, long before the next poll was due (600 s).
            assert clock.now() - seen_at < timedelta(seconds=60)
            assert link.notified >= 1
        # The broker gone: the VEN polls on, every poll_s.
        mosquitto.process.terminate()
        mosquitto.process.wait(10)
        async with running(Oadr3Link(site, clock, None)) as fallback:
            await advance_until(clock, lambda: fallback.polls >= 1, 60)
            ev2 = cap_event(vtn, prog["id"], NOW + timedelta(hours=2), [80.0])
            got: list[str] = []

            async def take() -> None:
                while True:
                    got.append(json.loads((await fallback.receive()).payload)["event_id"])

            waiter = asyncio.create_task(take())
            wanted = f"oadr3.{ev2['id']}"
            await advance_until(clock, lambda: wanted in got, 700, step_s=10)
            waiter.cancel()
            assert fallback.notified == 0  # found by polling alone
    assert vtn.bad_exchanges() == []


def test_unusable_settings_are_one_error_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vtn = Vtn(base_url="https://127.0.0.1:9")
    site = oadr3_site(vtn, monkeypatch)
    cfg = site.config.grid.openadr3
    assert cfg is not None
    bad_ca = cfg.model_copy(update={"ca_file": tmp_path / "missing.pem"})
    with pytest.raises(ValueError, match=r"^grid\.openadr3\.ca_file: .*missing\.pem"):
        Oadr3Link(site, VirtualClock(NOW), None, config=bad_ca)
    monkeypatch.delenv("VPP_TEST_OADR3_SECRET")
    with pytest.raises(ValueError, match=r"^grid\.openadr3\.client_secret_env: .*not set"):
        Oadr3Link(site, VirtualClock(NOW), None)


def test_plain_http_is_warned_about_off_loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    warned = []
    for url in ("http://127.0.0.1:8081", "http://localhost:8081", "http://vtn.example.com"):
        site = oadr3_site(Vtn(base_url=url), monkeypatch)
        with structlog.testing.capture_logs() as logs:
            Oadr3Link(site, VirtualClock(NOW), None)
        warned.append([e["vtn_url"] for e in logs if e["event"] == "openadr3_plain_http"])
    assert warned == [[], [], ["http://vtn.example.com"]]


@pytest.mark.timeout(60)
async def test_a_vtn_that_hangs_is_a_timeout_and_a_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = VirtualClock(NOW, max_hold_wall_s=30.0)
    with serve() as vtn:
        site = oadr3_site(vtn, monkeypatch, poll_s=2)
        link = Oadr3Link(site, clock, None, timeout_s=0.3)
        async with running(link):
            await advance_until(clock, lambda: link.polls >= 1, 30)
            vtn.faults = {"/events": "hang"}
            with structlog.testing.capture_logs() as logs:
                await advance_until(clock, lambda: link.failures >= 2, 60)
            errors = [e["error"] for e in logs if e["event"] == "openadr3_vtn_failed"]
            assert errors and all("GET /events: ReadTimeout" in e for e in errors), errors
            vtn.faults = {}
            polls = link.polls
            await advance_until(clock, lambda: link.polls > polls, 60)
