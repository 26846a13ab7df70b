"""The device topics ACL of docs/site-and-commissioning.md, run by a real Mosquitto: only a
device's own user writes its telemetry and availability (its last will included)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from tests.conftest import Broker, _wait_listening, free_port

DOC = Path(__file__).resolve().parent.parent / "docs" / "site-and-commissioning.md"
USERS = ("vpp-office-1", "ev7", "ev8")


def _acl_example() -> str:
    section = DOC.read_text().split("## Device topics ACL", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block is not None, "the section has an ACL block"
    return block.group(1)


@pytest.fixture
def acl_broker() -> Iterator[Broker]:
    # Mosquitto started as root drops to its own user: pytest's tmp_path is not readable then.
    tmp_path = Path(tempfile.mkdtemp(prefix="vpp-acl-"))
    tmp_path.chmod(0o755)
    passwords = tmp_path / "passwords"
    passwords.touch()
    for user in USERS:
        subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, f"pw-{user}"], check=True)
    passwords.chmod(0o644)
    (tmp_path / "acl").write_text(_acl_example())
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npersistence false\n"
        f"password_file {passwords}\nacl_file {tmp_path / 'acl'}\nlog_type error\n"
    )
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL)
    try:
        _wait_listening(port)
        yield Broker("127.0.0.1", port, proc)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp_path)


def _client(broker: Broker, user: str, will: aiomqtt.Will | None = None) -> aiomqtt.Client:
    return aiomqtt.Client(broker.host, broker.port, username=user, password=f"pw-{user}", will=will)


def _will(device: str) -> aiomqtt.Will:
    topic = f"vpp/office-1/{device}/state"
    return aiomqtt.Will(topic, b'{"online": false}', qos=1, retain=True)


async def _crash(client: aiomqtt.Client) -> None:
    """Drop the connection without a DISCONNECT: the broker publishes the will."""
    sock = client._client.socket()
    assert isinstance(sock, socket.socket)
    sock.shutdown(socket.SHUT_RDWR)
    await asyncio.sleep(0.2)  # let aiomqtt see it is gone before the context closes


async def test_only_the_device_writes_its_telemetry_and_availability(acl_broker: Broker) -> None:
    got: list[tuple[str, bytes]] = []
    async with _client(acl_broker, "vpp-office-1") as agent:
        await agent.subscribe("vpp/office-1/+/telemetry", qos=1)
        await agent.subscribe("vpp/office-1/+/state", qos=1)
        # ev8's user fakes ev7's telemetry and leaves a will on ev7's state: both dropped.
        intruder = _client(acl_broker, "ev8", will=_will("ev7"))
        await intruder.__aenter__()
        await intruder.publish("vpp/office-1/ev7/telemetry", b'{"power_kw": 99}', qos=1)
        await _crash(intruder)
        # ev7 itself: its telemetry, then its own will when its connection drops.
        device = _client(acl_broker, "ev7", will=_will("ev7"))
        await device.__aenter__()
        await device.publish("vpp/office-1/ev7/telemetry", b'{"power_kw": 7}', qos=1)
        await _crash(device)

        async def collect() -> None:
            async for m in agent.messages:
                got.append((str(m.topic), bytes(m.payload)))  # type: ignore[arg-type]
                if m.topic.matches("vpp/office-1/ev7/state"):
                    return

        await asyncio.wait_for(collect(), 10)
    assert got == [
        ("vpp/office-1/ev7/telemetry", b'{"power_kw": 7}'),
        ("vpp/office-1/ev7/state", b'{"online": false}'),
    ]
    for c in (intruder, device):
        with contextlib.suppress(aiomqtt.MqttError):
            await c.__aexit__(None, None, None)
