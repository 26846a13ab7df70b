"""What `vpp sim` adds around a simulated site: a broker for its MQTT devices (the site
file's, or an embedded one where it says), and the listing of what it serves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys

from simulators.site import Endpoint
from vpp.site import BrokerConfig


class Refused(Exception):
    """A command cannot go on (the message names the option or field): exit 2."""


async def _reachable(host: str, port: int) -> bool:
    """Something accepts TCP connections at host:port (wall time, at most 2 s)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def ensure_broker(
    stack: contextlib.AsyncExitStack, b: BrokerConfig, where: str, *, may_embed: bool
) -> bool:
    """Make sure the MQTT devices have a broker: `b` when it listens; else, when allowed and
    `b` is plain MQTT on loopback, an embedded one (amqtt, as replay's) started at its port,
    so that `vpp run` with the same site file finds it. True when embedded; Refused when
    neither."""
    if await _reachable(b.host, b.port):
        return False
    loopback = b.host in ("127.0.0.1", "localhost") and not b.tls
    if not (may_embed and loopback):
        hint = ": start one there, or pass --broker mqtt://HOST:PORT" if may_embed else ""
        raise Refused(
            f"{where}: no MQTT broker at {b.host}:{b.port} (the MQTT devices need one){hint}"
        )
    try:
        from vpp.replay.broker import embedded_broker
    except ImportError as e:  # a site install without the replay extra (amqtt)
        raise Refused(
            f"{where}: no MQTT broker at {b.host}:{b.port} (the MQTT devices need one): start "
            f"one there, pass --broker mqtt://HOST:PORT, or install vpp[replay] ({e.name})"
        ) from e
    try:
        await stack.enter_async_context(embedded_broker(port=b.port))
    except Exception as e:  # the port taken meanwhile, or not ours to bind
        raise Refused(f"{where}: cannot start an embedded broker on {b.host}:{b.port}: {e}") from e
    return True


def print_endpoints(
    site_id: str,
    eps: list[Endpoint],
    json_out: bool,
    b: BrokerConfig,
    needs_broker: bool,
    embedded: bool,
) -> None:
    """The endpoints on stdout: one line each, or with `json_out` one JSON line (with the
    broker, when MQTT devices need one); a started embedded broker is said on stderr."""
    if json_out:
        doc = [
            {
                "id": e.id,
                "kind": str(e.kind),
                "transport": e.transport,
                "host": e.host,
                "port": e.port,
                "unit_id": e.unit_id,
                "profile": e.profile,
            }
            for e in eps
        ]
        out: dict[str, object] = {"site_id": site_id, "devices": doc}
        if needs_broker:
            out["broker"] = {"host": b.host, "port": b.port, "embedded": embedded}
        print(json.dumps(out), flush=True)
        return
    if embedded:
        print(
            f"embedded MQTT broker on {b.host}:{b.port} (nothing listened there): "
            "vpp run with this site file connects to it",
            file=sys.stderr,
        )
    for e in eps:
        unit = "-" if e.unit_id is None else e.unit_id
        print(
            f"{e.id:16} {e.kind!s:17} {e.transport:6} {e.host}:{e.port:<6} "
            f"unit {unit!s:4} {e.profile}",
            flush=True,
        )
