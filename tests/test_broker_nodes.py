"""A broker's node list and MQTT version in the site file and on the command line
(`broker.failover`, `mqtt://H1:P1,H2:P2`, `broker.protocol`): parsed, rejected in one line
naming the field, and used: the grid link reconnects on the next node when its node goes
away, and speaks MQTT 5 to a broker that wants it (Mosquitto speaks both)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from devices.clock import WallClock
from tests.conftest import Broker, free_port, start_mosquitto
from vpp.broker import connection
from vpp.mqtt_link import MqttLink
from vpp.site import BrokerConfig, SiteError, load_site


def test_a_url_list_names_the_first_node_and_the_failover_nodes() -> None:
    b = BrokerConfig.from_url("mqtt://ops@10.0.0.1:1884,10.0.0.2:1885,[::1]:1886")
    assert (b.host, b.port, b.username) == ("10.0.0.1", 1884, "ops")
    assert b.failover == ["10.0.0.2:1885", "[::1]:1886"]
    s = connection(b)
    assert [s.node(i).address for i in range(4)] == [
        "10.0.0.1:1884", "10.0.0.2:1885", "::1:1886", "10.0.0.1:1884",
    ]  # fmt: skip
    assert s.node(1).failover == (("::1", 1886), ("10.0.0.1", 1884))
    # One URL replaces the site file's nodes: it names one broker.
    assert BrokerConfig.from_url("mqtt://h:1", b).failover == []
    assert b.protocol == "3.1.1"  # what we always spoke; NATS accepts nothing else


@pytest.mark.parametrize(
    ("broker", "words"),
    [
        ({"failover": ["10.0.0.2"]}, "[0]: expected HOST:PORT, got '10.0.0.2'"),
        ({"failover": ["h:1", "h:70000"]}, "[1]: expected HOST:PORT, got 'h:70000'"),
        ({"protocol": "5.0"}, "broker.protocol: Input should be '3.1.1' or '5'"),
        ({"protocol": 5}, "broker.protocol"),
    ],
)
def test_a_bad_node_or_protocol_is_one_line_naming_the_field(
    tmp_path: Path, broker: dict[str, object], words: str
) -> None:
    meter = {"id": "meter", "type": "meter", "profile": "site-meter", "port": 1502}
    site = {"site_id": "s1", "broker": broker, "devices": [meter]}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site))
    with pytest.raises(SiteError) as err:
        load_site(path)
    field = f"broker.{next(iter(broker))}: "
    assert field in str(err.value) and words in str(err.value), str(err.value)
    assert "\n" not in str(err.value), str(err.value)


def test_a_bad_node_in_a_url_list_is_one_line() -> None:
    with pytest.raises(ValueError, match=r"^--broker mqtt://a:1,b: .*expected HOST:PORT, got 'b'"):
        BrokerConfig.from_url("mqtt://a:1,b")


async def test_the_link_moves_to_the_next_node_when_its_node_goes(tmp_path: Path) -> None:
    """Two Mosquittos stand for two nodes (they share no sessions: a NATS cluster does,
    tests/test_nats_cluster.py). The link on the first is on the second soon after the first
    stops, and speaks MQTT 5 to both."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first, second = start_mosquitto(tmp_path / "a"), start_mosquitto(tmp_path / "b")
    try:
        url = f"mqtt://{first.host}:{first.port},{second.host}:{second.port}"
        broker = BrokerConfig.from_url(url).model_copy(update={"protocol": "5"})
        link = MqttLink(broker, "nodes-1", WallClock(), client_id="nodes-link")
        task = asyncio.create_task(link.run())
        try:
            await asyncio.wait_for(link.connected.wait(), 10)
            assert link.address == f"{first.host}:{first.port}" and link.connects == 1
            _stop(first)
            async with asyncio.timeout(10):
                while link.connects < 2 or not link.connected.is_set():  # noqa: ASYNC110
                    await asyncio.sleep(0.05)  # a counter, not an event: polled
            assert link.address == f"{second.host}:{second.port}"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        _stop(first)
        _stop(second)


def test_mqtt5_keeps_the_session_as_3_1_1_does() -> None:
    from devices.mqtt_connect import SESSION_KEPT_S, mqtt_client

    async def options() -> tuple[object, object]:
        s = connection(BrokerConfig(host="127.0.0.1", port=free_port(), protocol="5"))
        client = mqtt_client(s, identifier="x", clean_session=False)
        return client._clean_start, client._properties

    clean_start, props = asyncio.run(options())
    assert clean_start is False
    assert getattr(props, "SessionExpiryInterval", None) == SESSION_KEPT_S


def _stop(broker: Broker) -> None:
    if broker.process.poll() is None:
        broker.process.terminate()
        broker.process.wait(timeout=10)
