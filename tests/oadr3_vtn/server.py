"""The test VTN served by uvicorn in a thread of its own, on a loopback port from the OS."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

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
