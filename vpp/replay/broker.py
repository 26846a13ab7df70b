"""An MQTT broker in this process (amqtt) on a free loopback port, for replays that are
given no broker: nothing to install for `make demo`."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from amqtt.broker import Broker

from vpp.site import BrokerConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def embedded_broker() -> AsyncIterator[BrokerConfig]:
    """Start amqtt on 127.0.0.1 (anonymous, no $SYS topics); yields its settings."""
    port = _free_port()
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.ERROR)
    broker = Broker(config)
    await broker.start()
    try:
        yield BrokerConfig(host="127.0.0.1", port=port, client_id="vpp-replay")
    finally:
        await broker.shutdown()
