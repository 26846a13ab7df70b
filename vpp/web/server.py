"""Serving the web app (vpp.web.app) with uvicorn in the caller's event loop, beside the
agent: `--http HOST:PORT` parsed and checked (loopback, or a token), the socket bound before
anything starts so that a bad address is one line, and a server that leaves the signals to
the agent."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class HttpAddress:
    """Where the page listens: a host (name or IP) and a port (0: one the OS gives)."""

    host: str
    port: int

    @property
    def loopback(self) -> bool:
        """True for localhost and 127.0.0.0/8 or ::1: no token needed there."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_http(value: str, option: str = "--http") -> HttpAddress:
    """`HOST:PORT` or `[IPV6]:PORT`; a ValueError naming `option` if it is not one."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{option}: expected HOST:PORT (e.g. 127.0.0.1:8080), got {value!r}")
    return HttpAddress(host, int(port))


def http_token(addr: HttpAddress, token_env: str | None, option: str = "--http") -> str | None:
    """The token the page asks for: read from the environment variable `token_env`; a
    ValueError when it is unset or empty, or when `addr` is not loopback and none is given."""
    if token_env is not None:
        token = os.environ.get(token_env, "")
        if not token:
            raise ValueError(f"--http-token-env: the environment variable {token_env} is empty")
        return token
    if not addr.loopback:
        raise ValueError(
            f"{option} {addr.host}:{addr.port} is not a loopback address: give a token with "
            "--http-token-env VAR"
        )
    return None


def bind(addr: HttpAddress, option: str = "--http") -> socket.socket:
    """A listening TCP socket on `addr`; a ValueError naming `option` if it cannot be had."""
    try:
        infos = socket.getaddrinfo(addr.host, addr.port, type=socket.SOCK_STREAM)
        family, kind, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
    except OSError as e:
        why = e.strerror or str(e)
        raise ValueError(f"{option} {addr.host}:{addr.port}: cannot listen: {why}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    """The page's address for a bound socket (its real port when 0 was asked)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class _Server(uvicorn.Server):
    """uvicorn that leaves SIGINT/SIGTERM to the agent (the CLI stops both)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(app: FastAPI, sock: socket.socket, stop: asyncio.Event) -> None:
    """Serve `app` on `sock` until `stop` is set. A failure of the web server is logged and
    ends only the page, never the agent beside it."""
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=1
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="http")
    log.info("http_serving", url=url_of(sock))
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        closing = getattr(app.state, "closing", None)
        if isinstance(closing, asyncio.Event):
            closing.set()  # the app's open streams end first
        server.should_exit = True
        try:
            await task
        except (Exception, SystemExit) as e:  # uvicorn exits on a startup error
            log.error("http_failed", error=repr(e))
        sock.close()


async def run_with_page(
    run: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
    app: FastAPI,
    sock: socket.socket,
    stop: asyncio.Event,
) -> None:
    """`run(...)` (the agent) with the page served beside it in the same loop until `stop` is
    set or the agent ends. The page stops first (open streams get a second), so that no
    request reads the agent's store once it is closed; a page that fails leaves the agent
    running."""
    page = asyncio.create_task(serve(app, sock, stop), name="page")
    agent_stop = asyncio.Event()
    agent = asyncio.create_task(run(agent_stop), name="agent")
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({agent, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        stop.set()
        await page
        agent_stop.set()
        await agent
