"""Fan-out on NATS at the transport level: one publisher (as the aggregator's sites link) on
node 0 of a 3-node NATS cluster (vpp/fleet/nats_cluster.py) sends one QoS 1 message to each of
`--sites` topics, each subscribed at QoS 1 by its own client on node 1 or 2 (as the sites);
once per paho in-flight window of `--windows`. Per case: the wall time from the first
publish to every PUBACK (p50/p99/last) and to every receipt (p50/p99/max), and the load
average. Without the aggregator, the allocation or the sites' answers: what the window
alone does to a fan-out (docs/performance.md, "The fleet on NATS").

Run: `PYTHONPATH=. .venv/bin/python bench/nats_fanout.py [--sites 282] [--windows 20,2000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_ROOT))

import aiomqtt  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


class Receipts:
    """Each receipt's wall time by (tag, site); `all_in(tag)` is set once every site has
    its message of `tag`."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.at: dict[tuple[str, int], float] = {}
        self.counts: dict[str, int] = {}
        self.done: dict[str, asyncio.Event] = {}

    def all_in(self, tag: str) -> asyncio.Event:
        return self.done.setdefault(tag, asyncio.Event())

    def add(self, tag: str, i: int) -> None:
        if (tag, i) not in self.at:
            self.at[(tag, i)] = time.time()
            self.counts[tag] = self.counts.get(tag, 0) + 1
            if self.counts[tag] >= self.n:
                self.all_in(tag).set()


async def subscribers(
    cluster: Any, n: int, got: Receipts
) -> tuple[list[aiomqtt.Client], list[asyncio.Task[None]]]:
    """`n` clients, one QoS 1 subscription each, on nodes 1 and 2 (50 connecting at once),
    and their listening tasks."""
    slots = asyncio.Semaphore(50)
    clients: list[aiomqtt.Client] = []
    tasks: list[asyncio.Task[None]] = []

    async def one(i: int) -> None:
        node = cluster.nodes[1 + i % 2]
        async with slots:
            c = aiomqtt.Client(
                node.host, node.mqtt_port, identifier=f"site-{i}", clean_session=False
            )
            await c.__aenter__()
            await c.subscribe(f"vpp/s{i:04d}/events", qos=1)
        clients.append(c)

        async def listen() -> None:
            async for m in c.messages:
                d = json.loads(bytes(m.payload))
                got.add(d["tag"], d["i"])

        tasks.append(asyncio.get_running_loop().create_task(listen()))

    await asyncio.gather(*(one(i) for i in range(n)))
    return clients, tasks


async def case(cluster: Any, n: int, window: int, got: Receipts) -> dict[str, Any]:
    """One fan-out of `n` QoS 1 messages with paho's in-flight window `window`."""
    node, tag = cluster.nodes[0], f"w{window}-{time.monotonic_ns()}"
    load = os.getloadavg()[0]
    async with aiomqtt.Client(
        node.host, node.mqtt_port, identifier=f"aggr-{tag}", max_inflight_messages=window
    ) as pub:
        pub.pending_calls_threshold = n
        acked: list[float] = []
        t0 = time.time()

        async def send(i: int) -> None:
            body = json.dumps({"i": i, "tag": tag}).encode()
            await pub.publish(f"vpp/s{i:04d}/events", body, qos=1)
            acked.append(time.time() - t0)

        await asyncio.gather(*(send(i) for i in range(n)))
        with contextlib.suppress(TimeoutError):  # bounded: the row says how many came
            await asyncio.wait_for(got.all_in(tag).wait(), 60)
    recv = [got.at[(tag, i)] - t0 for i in range(n) if (tag, i) in got.at]
    return {
        "window": window,
        "messages": n,
        "puback_p50_s": round(pct(acked, 0.5), 3),
        "puback_p99_s": round(pct(acked, 0.99), 3),
        "puback_last_s": round(max(acked), 3),
        "received": len(recv),
        "recv_p50_s": round(pct(recv, 0.5), 3) if recv else None,
        "recv_p99_s": round(pct(recv, 0.99), 3) if recv else None,
        "recv_max_s": round(max(recv), 3) if recv else None,
        "loadavg_1min": round(load, 2),
    }


async def measure(args: argparse.Namespace, cluster: Any) -> list[dict[str, Any]]:
    got = Receipts(args.sites)
    clients, tasks = await subscribers(cluster, args.sites, got)
    rows = []
    for _ in range(args.repeat):
        for w in args.windows:
            rows.append(await case(cluster, args.sites, w, got))
            print(json.dumps(rows[-1]), flush=True)
            await asyncio.sleep(1.0)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in clients:
        await c.__aexit__(None, None, None)
    return rows


def main() -> None:
    from vpp.fleet.nats_cluster import nats_cluster

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sites", type=int, default=282)
    ap.add_argument("--windows", default="20,2000", help="paho in-flight windows, comma-separated")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=_ROOT / "out/bench-fleet", help="NATS stores")
    args = ap.parse_args()
    args.windows = [int(w) for w in args.windows.split(",")]
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    args.workdir.mkdir(parents=True, exist_ok=True)
    load0, t0, cpu0 = os.getloadavg(), time.perf_counter(), time.process_time()
    with (
        tempfile.TemporaryDirectory(prefix="nats-fanout-", dir=args.workdir) as tmp,
        nats_cluster(Path(tmp)) as cluster,
    ):
        asyncio.run(measure(args, cluster))
    print(
        json.dumps(
            {
                "wall_s": round(time.perf_counter() - t0, 1),
                "cpu_s": round(time.process_time() - cpu0, 1),
                "loadavg_before": [round(x, 2) for x in load0],
                "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    main()
