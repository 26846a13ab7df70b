"""What the running agent publishes conforms to the grid contract and to our models.

The real agent with its DrController on the virtual clock, the simulated office over Modbus
TCP and MQTT, a real Mosquitto: the summer afternoon (tests/dr_scenarios.py) shortened so
the event (14:00-16:00) ends and is completed. Every response, report, status and telemetry
message that crossed the broker is validated with vpp.grid.messages (from its JSON bytes):
with the site's `grid.extensions` off against the contract's strict models (exactly the
contract's fields), with it on (config/sites/office.yaml) against the extended models.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from devices.clock import VirtualClock
from devices.profile import Kind
from tests.conftest import Broker
from tests.dr_scenarios import afternoon
from tests.grid.helpers import NOW
from vpp.control.types import DeviceView, Snapshot
from vpp.grid.messages import (
    KIND_FIELDS,
    ExtendedReport,
    ExtendedStatus,
    ExtendedTelemetry,
    Report,
    Response,
    Status,
    Telemetry,
)
from vpp.mqtt_link import MqttLink
from vpp.replay.runner import STORE, replay
from vpp.replay.scenario import Scenario
from vpp.site import BrokerConfig, GridConfig
from vpp.store.store import Store
from vpp.telemetry import device_telemetry, telemetry_message

# The contract's report fields (grid-interface.md §Report), always present.
REPORT_FIELDS = {
    "v",
    "event_id",
    "modification",
    "program",
    "baseline_method",
    "intervals",
    "delivered_ratio",
    "comfort_violation_degC_h",
}
INTERVAL_FIELDS = {
    "start",
    "duration",
    "requested_kw",
    "baseline_kw",
    "actual_kw",
    "delivered_kw",
}
# Per kind, the contract's device fields: online, power_kw and the kind's own.
ALL_KIND_FIELDS = set().union(*KIND_FIELDS.values())


async def _watch(
    broker: Broker, topics: list[str], got: list[tuple[str, bytes]], ready: asyncio.Event
) -> None:
    async with aiomqtt.Client(broker.host, broker.port, identifier="conform-watch") as client:
        for t in topics:
            await client.subscribe(t, qos=1)
        ready.set()
        async for m in client.messages:
            got.append((str(m.topic), bytes(m.payload)))  # type: ignore[arg-type]


Published = tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[str, bytes]]]


async def _run_afternoon(sc: Scenario, broker: Broker, out: Path) -> Published:
    """Replay `sc` through `broker`: (responses, reports, [(topic, status/telemetry bytes)])."""
    site = sc.site
    prefix = (site.config.broker or BrokerConfig()).prefix
    base = f"{prefix}/{site.id}"
    got: list[tuple[str, bytes]] = []
    ready = asyncio.Event()
    watcher = asyncio.create_task(
        _watch(broker, [f"{base}/status", f"{base}/telemetry"], got, ready)
    )
    try:
        await asyncio.wait_for(ready.wait(), 10)  # subscribed before the agent starts
        await replay(sc, out, strategy="optimiser", broker_url=broker.url, counterfactual=False)
        await asyncio.sleep(0.5)  # the offline status crosses the broker
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    lines = [json.loads(x) for x in (out / "messages.jsonl").read_text().splitlines()]
    received = [m for m in lines if m["dir"] == "site->grid"]
    responses = [m["msg"] for m in received if m["topic"].endswith("/responses")]
    reports = [m["msg"] for m in received if m["topic"].endswith("/reports")]
    return responses, reports, got


@pytest.mark.timeout(120)
async def test_every_published_message_validates(fresh_mosquitto: Broker, tmp_path: Path) -> None:
    """Extensions on (the bundled office site): the extended form, notes and all."""
    sc = afternoon(value=120.0, duration="PT5H15M", event_id="conform-1")
    site = sc.site
    assert site.config.grid.extensions
    out = tmp_path / "run"
    responses, reports, got = await _run_afternoon(sc, fresh_mosquitto, out)

    # -- responses and reports, as the grid operator received them -----------------------
    for r in responses:
        Response.model_validate_json(json.dumps(r))
    assert [r["status"] for r in responses] == ["received", "opt_in", "completed"]
    assert len(responses[1]["expected_kw"]) == 8

    assert len(reports) >= 2, "a report during the event and the final one"
    for rep in reports:
        model = ExtendedReport.model_validate_json(json.dumps(rep))
        assert REPORT_FIELDS <= rep.keys(), REPORT_FIELDS - rep.keys()
        assert rep["signal"] == "curtail_kw" and rep["program"] == "e2e" and "ts" in rep
        assert model.event_id == "conform-1"
        for iv in rep["intervals"]:
            assert INTERVAL_FIELDS <= iv.keys(), INTERVAL_FIELDS - iv.keys()
            assert isinstance(iv["missing"]["notes"], list)
    final = reports[-1]
    assert final["final"] is True and len(final["intervals"]) == 8
    assert [r["final"] for r in reports[:-1]] == [False] * (len(reports) - 1)
    measured = [iv for iv in final["intervals"] if iv["delivered_kw"] is not None]
    assert len(measured) == 8 and final["delivered_ratio"] is not None

    # -- status: online at the start, offline with a reason at the clean stop ------------
    statuses = [ExtendedStatus.model_validate_json(p) for t, p in got if t.endswith("/status")]
    assert statuses[0].online is True and statuses[0].site_id == site.id
    assert statuses[0].agent_version and statuses[0].ts is not None
    assert statuses[-1].online is False and statuses[-1].reason

    # -- telemetry: every message, every device with its kind's fields -------------------
    telemetry = [
        (p, ExtendedTelemetry.model_validate_json(p)) for t, p in got if t.endswith("/telemetry")
    ]
    period = site.config.periods.telemetry_s
    assert len(telemetry) >= 0.9 * 5.25 * 3600 / period
    kinds = {d.id: d.kind.value for d in site.devices}
    seen_fields: dict[str, set[str]] = {}
    (event,) = sc.final_events()
    based = 0  # messages that state the event's settlement baseline (extension baseline_kw)
    for raw, msg in telemetry:
        data: dict[str, Any] = json.loads(raw)
        assert set(data) - {"baseline_kw"} == {"v", "ts", "site_import_kw", "devices"}
        if "baseline_kw" in data:  # only while the site acts in the event
            assert event.start <= datetime.fromisoformat(data["ts"]) <= event.end, data["ts"]
            assert isinstance(data["baseline_kw"], float) and data["baseline_kw"] > 0
            based += 1
        assert set(msg.devices) == set(kinds)
        for dev_id, dev in data["devices"].items():
            assert dev["kind"] == kinds[dev_id]
            own = KIND_FIELDS.get(dev["kind"], frozenset())
            assert not (set(dev) & (ALL_KIND_FIELDS - own)), (dev_id, dev)
            if dev["online"]:
                assert isinstance(dev["power_kw"], float), (dev_id, dev)
            else:
                assert dev["reason"] and "power_kw" not in dev, (dev_id, dev)
            seen_fields.setdefault(dev_id, set()).update(dev)
        meter = next(d for d in site.devices if d.kind.value == "meter")
        if data["devices"][meter.id]["online"]:
            assert data["site_import_kw"] == data["devices"][meter.id]["power_kw"]
    # At one message per period over the event, most of them state its baseline.
    assert based >= 0.5 * (event.end - event.start).total_seconds() / period, based
    # Over the run each device reported its kind's own fields.
    for dev_id, kind in kinds.items():
        missing = (KIND_FIELDS.get(kind, frozenset()) | {"online", "power_kw"}) - seen_fields[
            dev_id
        ]
        assert not missing, (dev_id, kind, missing)


def _contract_site(sc: Scenario) -> Scenario:
    """`sc` with the site's grid extensions off (the default of a site file)."""
    config = sc.site.config.model_copy(update={"grid": GridConfig(extensions=False)})
    return dataclasses.replace(sc, site=sc.site.model_copy(update={"config": config}))


@pytest.mark.timeout(120)
async def test_without_extensions_only_the_contracts_fields_are_published(
    fresh_mosquitto: Broker, tmp_path: Path
) -> None:
    """Extensions off: every report, response, status and telemetry message that crossed the
    broker validates against the contract's strict models (unknown fields forbidden) and has
    exactly the contract's keys; the store still keeps the extended reports."""
    sc = _contract_site(afternoon(value=120.0, duration="PT5H5M", event_id="strict-1"))
    site = sc.site
    assert not site.config.grid.extensions
    out = tmp_path / "run"
    responses, reports, got = await _run_afternoon(sc, fresh_mosquitto, out)

    for r in responses:
        Response.model_validate_json(json.dumps(r))
        assert {"v", "event_id", "modification", "status", "ts"} <= set(r) <= {
            "v", "event_id", "modification", "status", "expected_kw", "reason", "errors", "ts"
        }  # fmt: skip
    assert [r["status"] for r in responses] == ["received", "opt_in", "completed"]

    assert len(reports) >= 2, "a report during the event and the final one"
    for rep in reports:
        Report.model_validate_json(json.dumps(rep))
        assert set(rep) == REPORT_FIELDS
        for iv in rep["intervals"]:
            assert set(iv) == INTERVAL_FIELDS
        with pytest.raises(ValueError):  # not the extended form by accident
            ExtendedReport.model_validate_json(json.dumps(rep))
    assert [len(r["intervals"]) for r in reports][-1] == 8
    assert reports[-1]["delivered_ratio"] is not None and reports[-1]["event_id"] == "strict-1"
    # The store keeps the extended form (notes, details) for the site's own use.
    published = [json.loads(x) for x in (out / "reports.jsonl").read_text().splitlines()]
    assert published == reports
    store = Store(out / STORE)
    try:
        stored = store.reports("strict-1")
    finally:
        store.close()
    assert len(stored) == len(reports)
    for kept, sent in zip(stored, reports, strict=True):
        ExtendedReport.model_validate_json(json.dumps(kept))
        assert {k: kept[k] for k in REPORT_FIELDS if k != "intervals"} == {
            k: sent[k] for k in REPORT_FIELDS if k != "intervals"
        }
        assert [{k: iv[k] for k in INTERVAL_FIELDS} for iv in kept["intervals"]] == sent[
            "intervals"
        ]
    assert stored[-1]["final"] is True

    statuses = [(p, Status.model_validate_json(p)) for t, p in got if t.endswith("/status")]
    assert [json.loads(p) for p, _ in statuses] == [
        {"v": 1, "online": True},
        {"v": 1, "online": False},
    ]

    telemetry = [(p, Telemetry.model_validate_json(p)) for t, p in got if t.endswith("/telemetry")]
    assert len(telemetry) >= 0.9 * 5 * 3600 / site.config.periods.telemetry_s
    kinds = {d.id: d.kind.value for d in site.devices}
    seen: dict[str, set[str]] = {}
    for raw, msg in telemetry:
        data: dict[str, Any] = json.loads(raw)
        assert set(data) == {"v", "ts", "site_import_kw", "devices"}
        assert set(msg.devices) == set(kinds)
        for dev_id, dev in data["devices"].items():
            allowed = {"online", "power_kw"} | KIND_FIELDS.get(kinds[dev_id], frozenset())
            assert set(dev) <= allowed, (dev_id, dev)
            assert dev["online"] or dev == {"online": False}, (dev_id, dev)
            seen.setdefault(dev_id, set()).update(dev)
    for dev_id, kind in kinds.items():
        assert seen[dev_id] == {"online", "power_kw"} | KIND_FIELDS.get(kind, frozenset())


@pytest.mark.timeout(30)
@pytest.mark.parametrize("extensions", [False, True])
async def test_last_will_is_the_minimal_offline_status(
    fresh_mosquitto: Broker, extensions: bool
) -> None:
    """The agent's connection drops without a DISCONNECT: the broker publishes the will,
    `{"v": 1, "online": false}` in both modes; the online status is the contract's
    `{"v": 1, "online": true}`, or with extensions also says when, which site and version."""
    clock = VirtualClock(NOW)
    broker = BrokerConfig(host=fresh_mosquitto.host, port=fresh_mosquitto.port)
    link = MqttLink(broker, "office", clock, subscriptions=[], extensions=extensions)
    got: list[tuple[str, bytes]] = []
    ready = asyncio.Event()
    watcher = asyncio.create_task(_watch(fresh_mosquitto, ["vpp/office/status"], got, ready))
    await asyncio.wait_for(ready.wait(), 10)
    runner = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(link.connected.wait(), 10)
        for _ in range(200):
            if got:
                break
            await asyncio.sleep(0.01)
        if extensions:
            online = ExtendedStatus.model_validate_json(got[0][1])
            assert online.online and online.site_id == "office" and online.ts == NOW
        else:
            assert Status.model_validate_json(got[0][1]).online
            assert json.loads(got[0][1]) == {"v": 1, "online": True}
        assert link._client is not None
        sock = link._client._client.socket()  # the TCP connection under aiomqtt
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)  # dropped, as by a crash or a lost network
        for _ in range(500):
            if any(json.loads(p) == {"v": 1, "online": False} for _, p in got):
                break
            await asyncio.sleep(0.01)
        wills = [p for _, p in got if json.loads(p) == {"v": 1, "online": False}]
        assert wills, got
        assert not Status.model_validate_json(wills[0]).online
    finally:
        for task in (runner, watcher):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def test_offline_and_implausible_devices_still_give_a_valid_message() -> None:
    """Built from a snapshot: every device offline (site import null, each with its reason);
    a SoC of 140 % is left out and named; a thermal zone carries exactly its fields."""
    site = afternoon().site
    views = {
        d.id: DeviceView(d.id, False, {}, None, "no Modbus answer for 30 s") for d in site.devices
    }
    snap = Snapshot(NOW, 0.0, None, views)
    data = telemetry_message(site, snap)
    msg = ExtendedTelemetry.model_validate_json(json.dumps(data))
    assert data["site_import_kw"] is None and msg.site_import_kw is None
    assert all(
        d == {"online": False, "kind": d["kind"], "reason": "no Modbus answer for 30 s"}
        for d in data["devices"].values()
    )
    strict = telemetry_message(_contract_site(afternoon()).site, snap)
    assert Telemetry.model_validate_json(json.dumps(strict)).site_import_kw is None
    assert all(d == {"online": False} for d in strict["devices"].values())

    bad = DeviceView("b", True, {"soc_pct": 140.0, "power_kw": -5.0, "max_charge_kw": 50.0}, NOW)
    entry = device_telemetry(Kind.battery, bad)
    assert entry.soc is None and entry.power_kw == -5.0
    assert entry.reason is not None and "soc" in entry.reason
    ok = DeviceView("z", True, {"zone_temp_c": 25.0, "setpoint_c": 24.0, "power_kw": 3.0}, NOW)
    dumped = device_telemetry(Kind.hvac, ok).model_dump(exclude_none=True)
    assert dumped == {
        "online": True,
        "power_kw": 3.0,
        "kind": "hvac",
        "zone_temp_c": 25.0,
        "setpoint_c": 24.0,
    }
