"""An MQTT device served through a real Mosquitto: telemetry, commands, acks, faults."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import aiomqtt
import pytest

from building.params import EvChargerParams, EvSessionSpec
from devices.clock import VirtualClock
from simulators.faults import Faults
from simulators.site import SimDeviceSpec, SimulatedSite
from tests.conftest import Broker
from tests.simulators.conftest import profile

SITE = "mqtt-test"


async def next_message(
    clock: VirtualClock,
    client: aiomqtt.Client,
    topic: str,
    since: datetime | None = None,
    wall_s: float = 5.0,
) -> dict[str, Any]:
    """The next JSON message on `topic` (stamped `since` or later, if given); virtual time
    stands still while we wait."""

    async def wait() -> dict[str, Any]:
        async for msg in client.messages:
            if msg.topic.matches(topic):
                body = dict(json.loads(bytes(msg.payload)))  # type: ignore[arg-type]
                if since is None or datetime.fromisoformat(body["ts"]) >= since:
                    return body
        raise AssertionError("message stream ended")

    async with clock.hold():
        return await asyncio.wait_for(wait(), wall_s)


async def command(
    clock: VirtualClock,
    client: aiomqtt.Client,
    topic: str,
    body: dict[str, Any] | bytes,
    wait_ack: bool = True,
) -> dict[str, Any]:
    """Publish a command and return its ack. Time stands still for the whole round trip
    (`expect` alone would release it when the device receives the command, while our own
    publish may still wait for the broker's PUBACK)."""
    payload = body if isinstance(body, bytes) else json.dumps(body)
    async with clock.hold():
        clock.expect(topic)
        await client.publish(topic, payload, qos=1)
        if not wait_ack:
            return {}
        return await next_message(clock, client, topic + "/ack")


async def test_mqtt_charger_telemetry_commands_and_faults(
    mosquitto: Broker, request: pytest.FixtureRequest
) -> None:
    clock = VirtualClock()
    session = EvSessionSpec(arrival=0.0, departure=36000.0, energy_needed_kwh=50, vehicle_max_kw=9)
    spec = SimDeviceSpec("ev", profile("ev-charger-mqtt"), EvChargerParams(sessions=[session]))
    base = f"vpp/{SITE}/ev"
    site = SimulatedSite(clock, [spec], site_id=SITE, broker=(mosquitto.host, mosquitto.port))
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier=request.node.name) as c:
        await c.subscribe(f"{base}/#", qos=1)
        async with site:
            ep = site.endpoints()[0]
            assert (ep.transport, ep.host, ep.port) == ("mqtt", mosquitto.host, mosquitto.port)
            assert (await next_message(clock, c, f"{base}/state")) == {"online": True}
            tele = await next_message(clock, c, f"{base}/telemetry")
            fields = {p.field for p in spec.profile.points.values()}  # type: ignore[union-attr]
            assert fields | {"ts"} == set(tele)
            assert isinstance(tele["plugged"], bool) and isinstance(tele["state"], int)
            assert datetime.fromisoformat(tele["ts"]) == clock.now()

            await clock.sleep(60)
            ack = await command(clock, c, f"{base}/cmd", {"power_limit_kw": 7.5, "cmd_id": "c1"})
            assert ack["ok"] is True and ack["cmd_id"] == "c1"
            assert site.state()["ev"]["power_limit_kw"] == 7.5
            await clock.sleep(10)
            assert site.state()["ev"]["power_kw"] == pytest.approx(7.5)
            tele = await next_message(clock, c, f"{base}/telemetry", since=clock.now())
            assert tele["power_kw"] == pytest.approx(7.5)
            assert tele["state"] == 2 and tele["plugged"] is True

            refused = {
                b'{"power_limit_kw": 50}': "power_limit_kw: 50 outside",
                b'{"power_kw": 3}': "power_kw: read-only",
                b'{"colour": "red"}': "colour: unknown field",
                b'{"power_limit_kw": "fast"}': "power_limit_kw: expected a number",
                b"not json": "not JSON",
            }
            for body, error in refused.items():
                ack = await command(clock, c, f"{base}/cmd", body)
                assert ack["ok"] is False and error in ack["error"], (body, ack)
            assert site.state()["ev"]["power_limit_kw"] == 7.5

            # Delay: the command is applied 3 clock seconds after it arrives (time must run
            # for that, so we do not hold it while waiting).
            await site.set_fault("ev", Faults(delay_s=3.0))
            sent = clock.now()
            await command(clock, c, f"{base}/cmd", {"power_limit_kw": 6.0}, wait_ack=False)
            await clock.sleep(2.5)
            assert site.state()["ev"]["power_limit_kw"] == 7.5
            await clock.sleep(1.0)
            assert site.state()["ev"]["power_limit_kw"] == 6.0
            ack = await next_message(clock, c, f"{base}/cmd/ack")
            assert ack["ok"] is True
            assert (datetime.fromisoformat(ack["ts"]) - sent).total_seconds() == pytest.approx(3)

            # Exception fault: refused with an error, not applied.
            await site.set_fault("ev", Faults(exception_code=4))
            ack = await command(clock, c, f"{base}/cmd", {"power_limit_kw": 5.0})
            assert ack["ok"] is False and "fault code 4" in ack["error"]
            assert site.state()["ev"]["power_limit_kw"] == 6.0

            # Offline: the device says so and disconnects; back online on clearing.
            await site.set_fault("ev", Faults(offline=True))
            assert (await next_message(clock, c, f"{base}/state")) == {"online": False}
            await site.set_fault("ev", Faults())
            assert (await next_message(clock, c, f"{base}/state")) == {"online": True}

            # The watchdog: 60 s after the last command the default limit returns.
            await clock.sleep(61)
            assert site.state()["ev"]["power_limit_kw"] == 11.0


async def test_unreachable_broker_is_named_with_the_device() -> None:
    from tests.conftest import free_port

    clock = VirtualClock()
    spec = SimDeviceSpec("ev9", profile("ev-charger-mqtt"))
    site = SimulatedSite(clock, [spec], broker=("127.0.0.1", free_port()))
    with pytest.raises(ConnectionError, match=r"devices\.ev9: cannot reach the MQTT broker"):
        async with site:
            pass


async def test_announced_telemetry_arrives_at_the_instant_it_was_sent(
    mosquitto: Broker, request: pytest.FixtureRequest
) -> None:
    clock = VirtualClock()
    spec = SimDeviceSpec("ev", profile("ev-charger-mqtt"))
    topic = "vpp/announce/ev/telemetry"
    site = SimulatedSite(
        clock,
        [spec],
        site_id="announce",
        broker=(mosquitto.host, mosquitto.port),
        telemetry_period_s=10.0,
        announce_mqtt=True,
    )
    lags: list[float] = []
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier=request.node.name) as c:
        await c.subscribe(topic, qos=0)

        async def receive() -> None:
            async for msg in c.messages:
                body = json.loads(bytes(msg.payload))  # type: ignore[arg-type]
                lags.append((clock.now() - datetime.fromisoformat(body["ts"])).total_seconds())
                clock.arrived(topic)

        receiver = asyncio.create_task(receive())
        async with site:
            await clock.sleep(300)
        receiver.cancel()
    assert len(lags) >= 30  # one every 10 s of clock time, none lost to leaping time
    assert lags == [0.0] * len(lags)


async def test_going_offline_while_an_ack_is_acknowledged_ends(
    mosquitto: Broker, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`set_fault(offline)` issued the instant the broker acknowledges the device's ack
    returns: the cancellation is not lost in aiomqtt's wait for the PUBACK (Python 3.11
    `wait_for`, CPython gh-86296), which left the command loop, and so stop(), hanging."""
    clock = VirtualClock()
    spec = SimDeviceSpec("ev", profile("ev-charger-mqtt"))
    base = f"vpp/{SITE}/ev"
    site = SimulatedSite(clock, [spec], site_id=SITE, broker=(mosquitto.host, mosquitto.port))
    going_offline: list[asyncio.Task[None]] = []
    on_publish = aiomqtt.Client._on_publish

    def puback_then_offline(self: aiomqtt.Client, *args: Any) -> None:
        sent = self._client._out_messages.get(args[2])  # paho's message of this mid
        on_publish(self, *args)
        if sent is not None and sent.topic == f"{base}/cmd/ack" and not going_offline:
            going_offline.append(asyncio.ensure_future(site.set_fault("ev", Faults(offline=True))))

    monkeypatch.setattr(aiomqtt.Client, "_on_publish", puback_then_offline)
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier=request.node.name) as c:
        await c.subscribe(f"{base}/cmd/ack", qos=1)
        async with site:
            await command(clock, c, f"{base}/cmd", {"power_limit_kw": 7.0})
            # The ack reaches this client and the broker's PUBACK the device in either
            # order: wait (bounded) for the PUBACK too.
            for _ in range(100):
                if going_offline:
                    break
                await asyncio.sleep(0.05)
            assert going_offline, "the device's ack was not acknowledged by the broker"
            done, _ = await asyncio.wait(going_offline, timeout=5)
            assert done, "stop() hangs: the device's command loop did not end"
            assert not site._mqtt["ev"].running
