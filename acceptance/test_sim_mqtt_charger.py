# ruff: noqa: F405
"""ACCEPTANCE CHECK, NOT PART OF `make test` YET: this test of the simulated MQTT charger
(telemetry, commands, refusals, delay, exception, offline, watchdog) hangs now and then when it
runs after other tests in one process (idle in the event loop; pytest-timeout does not fire).
It passes alone. Moved here so that CI cannot hang on it; see the issue notes.

Run: `PYTHONPATH=. .venv/bin/python -m pytest acceptance -p no:cacheprovider`.
"""

from tests.simulators.test_mqtt_server import *  # noqa: F403 (its helpers and imports)
from tests.simulators.test_mqtt_server import command, next_message


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
