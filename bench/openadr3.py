"""OpenADR 3.1 latency bench: an event's appearance at the VTN → the agent's `opt_in`, and →
its first setpoint, with the VEN polling every 5 s and with the VTN's MQTT notifier.

On the wall clock, the real agent runs the small simulated site of the grid tests (meter, a
100 kW battery, two 20 kW loads) with its OpenADR 3.1 VEN against the spec-validated test VTN
(tests/oadr3_vtn) and the native MQTT link, through a Mosquitto started here. K events
(DISPATCH_SETPOINT_RELATIVE 20 kW, starting at once, 15 min) are created on the VTN one at a
time, each deleted (a cancel) once carried out. Measured with `time.time()` (the store's
response times are the agent's wall clock):

* `opt_in_ms`: created on the VTN → the `opt_in` the agent stored (OpenADR 3.1 carries no
  answer on its wire: this is when the agent decided);
* `setpoint_ms`: created → the agent's first successful write in a cycle whose target is the
  event.

With polling, the expected delay is half the poll period plus the agent's own time; the
notifier removes the first part. Prints JSON with CPU time and load average beside wall time.
Run: `PYTHONPATH=. .venv/bin/python bench/openadr3.py [--events 10] [--poll-s 5]
[--modes poll,notifier]`; `per_event_ms` lists each event's (opt_in, setpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent))

from building.params import BaseLoadParams  # noqa: E402
from devices.clock import WallClock  # noqa: E402
from tests.conftest import start_mosquitto  # noqa: E402
from tests.grid.live import small_site_data  # noqa: E402
from tests.oadr3_vtn.server import BL_CLIENT, VEN_CLIENT, mqtt_notifier, serve  # noqa: E402
from vpp.dr.controller import DrController  # noqa: E402
from vpp.dr.forecast import TwinForecast  # noqa: E402
from vpp.grid.fanout import FanoutLink  # noqa: E402
from vpp.grid.oadr3.link import Oadr3Link  # noqa: E402
from vpp.log import configure_logging  # noqa: E402
from vpp.service import site_agent  # noqa: E402
from vpp.simsite import environment, rebind, simulated_site  # noqa: E402
from vpp.site import BrokerConfig, parse_site  # noqa: E402

SECRET_ENV = "VPP_BENCH_OADR3_SECRET"


def _cpu_s() -> float:
    self_ = resource.getrusage(resource.RUSAGE_SELF)
    return self_.ru_utime + self_.ru_stime


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "p50": round(statistics.median(ordered), 1),
        "p99": round(p99, 1),
        "max": round(ordered[-1], 1),
        "mean": round(statistics.fmean(ordered), 1),
    }


async def measure(mode: str, k: int, poll_s: float, workdir: Path) -> dict[str, Any]:
    broker_proc = start_mosquitto(workdir)
    broker = BrokerConfig(host=broker_proc.host, port=broker_proc.port)
    rows: list[dict[str, float]] = []
    try:
        with ExitStack() as stack:
            vtn = stack.enter_context(serve())
            if mode == "notifier":
                stack.enter_context(mqtt_notifier(vtn, broker.host, broker.port))
            os.environ[SECRET_ENV] = VEN_CLIENT[1]
            data = small_site_data()
            data["site_id"] = f"bench-{mode}"
            data["grid"] = {
                "openadr3": {
                    "vtn_url": vtn.base_url,
                    "client_id": VEN_CLIENT[0],
                    "client_secret_env": SECRET_ENV,
                    "ven_name": "office-1",
                    "poll_s": poll_s,
                }
            }
            site = parse_site(data, workdir / f"{mode}.yaml")
            clock = WallClock()
            sim = simulated_site(site, clock, broker=(broker.host, broker.port), any_port=True)
            async with sim:
                live = rebind(site, sim.endpoints())
                base = BaseLoadParams.model_validate(live.config.sim.base_load)
                agent = site_agent(
                    live,
                    clock,
                    broker=broker,
                    store_path=workdir / f"{mode}.sqlite",
                    client_id=f"agent-{mode}",
                    forecast=TwinForecast(live, environment(live), base),
                )
                dr = agent.controller
                assert isinstance(dr, DrController) and isinstance(agent.link, FanoutLink)
                ven = agent.link.links["openadr3"]
                assert isinstance(ven, Oadr3Link)
                first_write: dict[str, float] = {}
                orig_write = agent.writer.write

                async def timed_write(commands: Any) -> Any:
                    res = await orig_write(commands)
                    target = dr.last_target
                    if res and target is not None and target.event_id is not None:
                        first_write.setdefault(target.event_id, time.time())
                    return res

                agent.writer.write = timed_write  # type: ignore[method-assign]
                stop = asyncio.Event()
                task = asyncio.create_task(agent.run(stop))
                for _ in range(600):  # ready: planned, registered, cycling (at most 60 s)
                    if dr.plans >= 1 and ven.registered.is_set() and agent.cycles >= 3:
                        break
                    await asyncio.sleep(0.1)
                for _ in range(100):  # the notifier subscribed (at most 10 s)
                    if mode != "notifier" or ven.notifier is not None:
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(2.0)
                program = vtn.create("programs", {"programName": "bench"}, BL_CLIENT[0])
                cpu0, wall0 = _cpu_s(), time.monotonic()
                for i in range(k):
                    now = datetime.now(UTC).replace(microsecond=0)
                    body = {
                        "programID": program["id"],
                        "intervalPeriod": {"start": now.isoformat(), "duration": "PT15M"},
                        "intervals": [
                            {
                                "id": 0,
                                "payloads": [
                                    {"type": "DISPATCH_SETPOINT_RELATIVE", "values": [20]}
                                ],
                            }
                        ],
                    }
                    # Let the next poll fall anywhere in the period, as an event would.
                    await asyncio.sleep((i * 0.37 * poll_s) % poll_s)
                    created = time.time()
                    event = vtn.create("events", body, BL_CLIENT[0])
                    native = f"oadr3.{event['id']}"
                    opt_in: float | None = None
                    for _ in range(600):
                        answers = {r["status"]: r["ts"] for r in agent.store.responses(native)}
                        if "opt_in" in answers and native in first_write:
                            opt_in = datetime.fromisoformat(answers["opt_in"]).timestamp()
                            break
                        await asyncio.sleep(0.05)
                    if opt_in is None:
                        raise RuntimeError(f"{native}: no opt_in and setpoint within 30 s")
                    rows.append(
                        {
                            "opt_in_ms": (opt_in - created) * 1000,
                            "setpoint_ms": (first_write[native] - created) * 1000,
                        }
                    )
                    vtn.delete("events", event["id"])
                    for _ in range(600):
                        if any(r["status"] == "cancelled" for r in agent.store.responses(native)):
                            break
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(1.0)
                cpu_s, wall_s = _cpu_s() - cpu0, time.monotonic() - wall0
                stop.set()
                await asyncio.wait_for(task, 30)
                notified = ven.notified
    finally:
        broker_proc.process.terminate()
        broker_proc.process.wait(10)
    return {
        "mode": mode,
        "poll_s": poll_s,
        "events": k,
        "opt_in_ms": _stats([r["opt_in_ms"] for r in rows]),
        "setpoint_ms": _stats([r["setpoint_ms"] for r in rows]),
        "notifications": notified,
        "per_event_ms": [[round(r["opt_in_ms"], 1), round(r["setpoint_ms"], 1)] for r in rows],
        "wall_s": round(wall_s, 1),
        "cpu_s": round(cpu_s, 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


async def bench(k: int, poll_s: float, modes: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vpp-bench-oadr3-") as tmp:
        results = [await measure(mode, k, poll_s, Path(tmp)) for mode in modes]
    return {"cpus": os.cpu_count(), "results": results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10, help="events per mode (10)")
    ap.add_argument("--poll-s", type=float, default=5.0, help="the VEN's poll period (5)")
    ap.add_argument(
        "--modes", default="poll,notifier", help="poll, notifier or both (poll,notifier)"
    )
    args = ap.parse_args()
    modes = args.modes.split(",")
    if not set(modes) <= {"poll", "notifier"}:
        ap.error(f"--modes: poll and/or notifier, got {args.modes!r}")
    configure_logging("WARNING")
    print(json.dumps(asyncio.run(bench(args.events, args.poll_s, modes)), indent=2))


if __name__ == "__main__":
    main()
