"""The test VTN served by uvicorn in a thread of its own, on a loopback port from the OS."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import paho.mqtt.client as paho
import uvicorn

from tests.oadr3_vtn.app import Vtn, make_app

BL_CLIENT = ("bl-1", "bl-secret")
VEN_CLIENT = ("office-1", "ven-secret")


@contextmanager
def serve(vtn: Vtn | None = None) -> Iterator[Vtn]:
    """A running VTN with one business-logic client (`bl-1`) and one VEN client
    (`office-1`); `vtn.base_url` is where it listens."""
    vtn = vtn or Vtn()
    vtn.add_client(*BL_CLIENT, role="bl")
    vtn.add_client(*VEN_CLIENT, role="ven")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    vtn.base_url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(make_app(vtn), log_level="critical", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test VTN did not start")
        time.sleep(0.01)
    try:
        yield vtn
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def mqtt_notifier(vtn: Vtn, host: str, port: int) -> Iterator[Vtn]:
    """`vtn` announcing the broker at host:port as its MQTT notifier and publishing every
    change there (QoS 1, paho-mqtt in its own network thread)."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-vtn-notifier")
    client.connect(host, port)
    client.loop_start()
    vtn.mqtt_uri = f"mqtt://{host}:{port}"

    def publish(topic: str, data: bytes) -> None:
        try:
            client.publish(topic, data, qos=1).wait_for_publish(5)
        except (RuntimeError, ValueError):
            pass  # the broker is gone: a VTN goes on without its notifier

    vtn.publish = publish
    try:
        yield vtn
    finally:
        vtn.publish = None
        client.loop_stop()
        client.disconnect()
