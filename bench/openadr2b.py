"""OpenADR 2.0b latency bench: an event's appearance at the VTN → `optIn` at the VTN, and →
the agent's first setpoint for it.

openleadr 0.5.36's real VTN (tests/openadr2b/vtn.py, in `.venv-openleadr`) runs as its own
process; the real agent (the small simulated site of tests/grid/live.py: meter, a 100 kW
battery, two curtailable loads; its only grid link the 2.0b VEN, `grid.mqtt: false`) polls
it every `--poll-s` (5 s, as the VTN also requests). For each of `--events` LOAD_DISPATCH
delta events (20 kW, starting at once), one at a time, with a pause between them that is no
multiple of the poll period (so the events land at every phase of the poll):

* `opt_in_s`: the VTN's `server.add_event` → the VTN receiving our oadrCreatedEvent optIn;
* `setpoint_s`: the same start → the agent's CommandWriter returning from its first
  successful write in a cycle whose target is this event.

Both are wall time (`time.time()`, one machine, so the two processes share the clock); the
wait for the next poll is uniform in 0…poll_s, so the mean is about poll_s / 2 plus the
planning. Each event is cancelled (and the cancel acknowledged) before the next.
Run: `python bench/openadr2b.py [--events 8] [--poll-s 5] [--json]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_ROOT))

from devices.clock import WallClock  # noqa: E402
from tests.grid.live import agent_for, night_timezone, sim_for, small_site_data  # noqa: E402
from tests.openadr2b.ready import agent_ready  # noqa: E402
from tests.openadr2b.vtn_process import openleadr_python, running_vtn  # noqa: E402
from vpp.log import configure_logging  # noqa: E402
from vpp.site import BrokerConfig, parse_site  # noqa: E402


def summary(xs: list[float]) -> dict[str, float | int]:
    s = sorted(xs)
    if not s:
        return {"n": 0}
    return {
        "n": len(s),
        "min": round(s[0], 3),
        "p50": round(s[len(s) // 2], 3),
        "mean": round(sum(s) / len(s), 3),
        "max": round(s[-1], 3),
    }


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


async def bench(events: int, poll_s: float) -> dict[str, Any]:
    clock = WallClock()
    broker = BrokerConfig()  # unused: the site has no MQTT link or device
    data = small_site_data(night_timezone(datetime.now(UTC), 14))
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    wall0, cpu0 = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
    python = openleadr_python()
    async with running_vtn(python, poll_s=poll_s, granularity_s=5, back_s=60) as vtn:
        data["grid"] = {
            "mqtt": False,
            "openadr2b": {"vtn_url": vtn.url, "ven_name": "live-1", "poll_s": poll_s},
        }
        with tempfile.TemporaryDirectory() as tmp:
            site = parse_site(data, Path(tmp) / "site.yaml")
            async with sim_for(site, clock, broker) as sim:
                agent, dr = agent_for(site, sim, clock, broker, Path(tmp) / "s.sqlite")
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
                run = asyncio.create_task(agent.run(stop))
                try:
                    # Ready: registered, every device read, planned, cycling.
                    await vtn.until(lambda: vtn.of("report_offer"), 60, "registration")
                    await agent_ready(agent, dr)
                    await asyncio.sleep(poll_s)
                    for i in range(events):
                        event_id = f"lat-{i}"
                        now = datetime.now(UTC).replace(microsecond=0)
                        vtn.send(
                            cmd="add_event", ven_name="live-1", signal_name="LOAD_DISPATCH",
                            signal_type="delta", event_id=event_id,
                            intervals=[{"start": now.isoformat(), "duration_s": 600, "value": 20}],
                        )  # fmt: skip
                        added = await vtn.until(
                            lambda e=event_id: [r for r in vtn.of("added") if r["event_id"] == e],
                            10,
                            "added",
                        )
                        answer = await vtn.until(
                            lambda e=event_id: [
                                r for r in vtn.of("created_event") if r["event_id"] == e
                            ],
                            4 * poll_s + 10,
                            "the answer",
                        )
                        for _ in range(200):  # bounded: 10 s after the answer
                            if f"oadr2b-{event_id}" in first_write:
                                break
                            await asyncio.sleep(0.05)
                        t0 = added[0]["t"]
                        setpoint = first_write.get(f"oadr2b-{event_id}")
                        rows.append(
                            {
                                "event_id": event_id,
                                "answer": answer[0]["opt_type"],
                                "opt_in_s": answer[0]["t"] - t0,
                                "setpoint_s": None if setpoint is None else setpoint - t0,
                            }
                        )
                        vtn.send(cmd="cancel", ven_name="live-1", event_id=event_id)
                        await vtn.until(
                            lambda e=event_id: (
                                len([r for r in vtn.of("created_event") if r["event_id"] == e]) >= 2
                            ),
                            4 * poll_s + 10,
                            "the cancel acknowledged",
                        )
                        await asyncio.sleep(poll_s * 0.37 * (i + 1) % poll_s + 1.0)
                finally:
                    stop.set()
                    await asyncio.wait_for(run, 30)
    wall = time.perf_counter() - wall0
    return {
        "poll_s": poll_s,
        "events": rows,
        "answers": sorted({r["answer"] for r in rows}),
        "opt_in_s": summary([r["opt_in_s"] for r in rows]),
        "setpoint_s": summary([r["setpoint_s"] for r in rows if r["setpoint_s"] is not None]),
        "no_setpoint": sum(r["setpoint_s"] is None for r in rows),
        "wall_s": round(wall, 1),
        "cpu_s_agent": round(_cpu(resource.RUSAGE_SELF) - cpu0, 1),
        "cpu_s_vtn": round(_cpu(resource.RUSAGE_CHILDREN), 1),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=8)
    p.add_argument("--poll-s", type=float, default=5.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    configure_logging("WARNING")  # as `vpp run` (the planner then solves in a thread)
    doc = asyncio.run(bench(args.events, args.poll_s))
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    for key in ("opt_in_s", "setpoint_s"):
        print(f"{key}: {doc[key]}")
    print(f"answers {doc['answers']}, no setpoint {doc['no_setpoint']}")
    print(
        f"wall {doc['wall_s']} s, CPU agent {doc['cpu_s_agent']} s, VTN {doc['cpu_s_vtn']} s; "
        f"load average {doc['loadavg_before']} → {doc['loadavg_after']} on {doc['cpus']} CPUs"
    )


if __name__ == "__main__":
    main()
