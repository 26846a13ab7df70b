"""Dispatch latency bench: grid event → `received`, first setpoint, `opt_in`; and the limit.

For 10 and 100 simulated Modbus devices (a meter, then batteries, HVAC zones, EV chargers
and curtailable loads), on the wall clock with a Mosquitto started here, the real Agent with
its DrController runs the site. An operator client publishes K `curtail_kw` events that
start at once, one at a time (each waits for its `opt_in`, then is cancelled), and measures
with `time.perf_counter()`:

* `received_ms`: publish → the `received` response arriving at the operator;
* `setpoint_ms`: publish → the agent's CommandWriter returning from its first successful
  write in a cycle whose target is this event (the closed loop's first setpoints);
* `opt_in_ms`: publish → the `opt_in` (or `opt_out`) response arriving.

The limit, measured in the same run against the same broker and simulators: an MQTT QoS 1
round trip (publish → delivery back to the same client) plus one raw pymodbus write to every
writable device at once (gathered). Targets at 100 devices: `received` ≤ 20 ms p99, first
setpoints ≤ 100 ms p99, `opt_in` ≤ 1 s p99.
Run: `python bench/dispatch.py [--sizes 10,100] [--events 20] [--json] [--profile]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import socket
import subprocess
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
from pymodbus.client import AsyncModbusTcpClient  # noqa: E402

from building.params import BaseLoadParams  # noqa: E402
from devices.clock import WallClock  # noqa: E402
from devices.profile import ModbusProfile, Table  # noqa: E402
from vpp.dr.controller import DrController  # noqa: E402
from vpp.dr.forecast import TwinForecast  # noqa: E402
from vpp.grid.client import build_event  # noqa: E402
from vpp.log import configure_logging  # noqa: E402
from vpp.service import site_agent  # noqa: E402
from vpp.simsite import environment, rebind, simulated_site  # noqa: E402
from vpp.site import BrokerConfig, Site, parse_site  # noqa: E402

# The bench's own clients send at once (no Nagle), so that only the agent's behaviour shows.
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
TARGETS_MS = {"received_ms": 20.0, "setpoint_ms": 100.0, "opt_in_ms": 1000.0}
HVAC_GAINS = [15, 15, 15, 15, 15, 15, 20, 35, 55, 60, 60, 60, 60, 60, 60, 60, 60, 55, 40, 25]
HVAC_GAINS += [20, 15, 15, 15]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- broker -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A Mosquitto on a free loopback port (as tests/conftest.py starts it)."""
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 100000\nlog_type error\nset_tcp_nodelay true\n"
    )
    proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise RuntimeError("mosquitto did not start listening")


# -- the site -----------------------------------------------------------------------------


def site_dict(n: int, site_id: str) -> dict[str, Any]:
    """A site file (as data) with `n` Modbus devices: one meter, then about 10 % batteries,
    30 % HVAC zones, 30 % EV chargers (plugged in) and the rest curtailable loads."""
    n_bat = max(1, round(0.1 * (n - 1)))
    n_hvac = max(1, round(0.3 * (n - 1)))
    n_ev = max(1, round(0.3 * (n - 1)))
    n_load = max(0, n - 1 - n_bat - n_hvac - n_ev)
    devs: list[dict[str, Any]] = [{"id": "meter", "type": "meter", "profile": "site-meter"}]
    for i in range(n_bat):
        devs.append(
            {
                "id": f"bat{i}",
                "type": "battery",
                "profile": "sunspec-battery",
                "limits": {"power_setpoint_kw": [-100, 100]},
                "soc_reserve_pct": 20,
                "priority": 10,
                "sim": {
                    "capacity_kwh": 200,
                    "max_charge_kw": 100,
                    "max_discharge_kw": 100,
                    "initial_soc_pct": 60,
                    "soc_min_pct": 5,
                    "soc_max_pct": 95,
                    "soc_reserve_pct": 20,
                },
            }
        )
    for i in range(n_hvac):
        devs.append(
            {
                "id": f"zone{i}",
                "type": "hvac",
                "profile": "hvac-zone",
                "poll_s": 60,
                "limits": {"setpoint_c": [20, 28], "power_limit_kw": [0, 120]},
                "comfort": {"min_c": 22, "max_c": 26},
                "priority": 40,
                "sim": {
                    "r_k_per_kw": 0.3,
                    "c_kwh_per_k": 40,
                    "cop": 3.0,
                    "max_power_kw": 60,
                    "initial_temp_c": 24.5,
                    "local_setpoint_c": 24,
                    "internal_gains_kw": HVAC_GAINS,
                    "solar_gain_factor": 10,
                },
            }
        )
    for i in range(n_ev):
        devs.append(
            {
                "id": f"ev{i}",
                "type": "ev_charger",
                "profile": "ev-charger-modbus",
                "poll_s": 60,
                "limits": {"power_limit_kw": [0, 11]},
                "ev": {"departure_after_h": 9, "energy_needed_kwh": 25},
                "priority": 30,
                "sim": {
                    "max_power_kw": 11,
                    "default_limit_kw": 11,
                    "sessions": [
                        {
                            "arrival": 0,
                            "departure": 80000,
                            "energy_needed_kwh": 40,
                            "vehicle_max_kw": 11,
                        }
                    ],
                },
            }
        )
    for i in range(n_load):
        devs.append(
            {
                "id": f"load{i}",
                "type": "curtailable_load",
                "profile": "curtailable-load",
                "poll_s": 60,
                "priority": 20,
                "sim": {"power_kw": 20},
            }
        )
    for i, d in enumerate(devs):
        d["port"] = 20000 + i  # replaced by the ports the simulator gets from the OS
    return {
        "site_id": site_id,
        "name": f"dispatch bench, {n} devices",
        "timezone": "UTC",
        "periods": {"poll_s": 5, "telemetry_s": 5, "plan_s": 900, "control_s": 5},
        "limits": {"import_kw": 100.0 * n, "export_kw": 0, "recovery_ramp_kw_per_min": 1000},
        "sim": {
            "step_s": 5,
            "seed": 7,
            "base_load": {"peak_kw": 16.0 * n, "noise_kw": 1},
            "environment": {"outdoor_min_c": 27, "outdoor_max_c": 35},
        },
        "devices": devs,
    }


# -- measurement --------------------------------------------------------------------------


def pct(xs: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) of `xs`, or None when empty."""
    if not xs:
        return None
    s = sorted(xs)
    k = min(len(s) - 1, max(0, round(q / 100.0 * len(s) + 0.5) - 1))
    return s[k]


def summary(xs: list[float]) -> dict[str, Any]:
    """p50, p99 and max of `xs` (ms), rounded, with the count."""
    r = {"n": len(xs), "p50": pct(xs, 50), "p99": pct(xs, 99), "max": max(xs) if xs else None}
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}


class Operator:
    """The grid side: publishes events, times the responses (wall clock, perf_counter)."""

    def __init__(self, client: aiomqtt.Client, prefix: str, site_id: str) -> None:
        self.client = client
        self.events_topic = f"{prefix}/{site_id}/events"
        self.responses_topic = f"{prefix}/{site_id}/responses"
        self.arrivals: dict[tuple[str, str], float] = {}
        self.reasons: dict[str, str] = {}
        self.changed = asyncio.Event()

    async def listen(self) -> None:
        async for m in self.client.messages:
            t = time.perf_counter()
            with contextlib.suppress(ValueError, TypeError):
                r = json.loads(bytes(m.payload))
                self.arrivals.setdefault((str(r.get("event_id")), str(r.get("status"))), t)
                if r.get("reason"):
                    self.reasons[str(r.get("event_id"))] = str(r["reason"])
                self.changed.set()

    async def wait_for(self, event_id: str, statuses: tuple[str, ...], timeout_s: float) -> str:
        """The first of `statuses` answered for `event_id`; TimeoutError after `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            while True:
                for s in statuses:
                    if (event_id, s) in self.arrivals:
                        return s
                self.changed.clear()
                await self.changed.wait()

    async def publish(self, payload: dict[str, Any]) -> float:
        t = time.perf_counter()
        await self.client.publish(self.events_topic, json.dumps(payload), qos=1)
        return t


async def measure_events(
    n: int, broker: BrokerConfig, k: int, workdir: Path, curtail_kw: float
) -> dict[str, Any]:
    """Run the agent on an n-device simulated site and time k immediate events."""
    clock = WallClock()
    site_id = f"bench-{n}"
    site: Site = parse_site(site_dict(n, site_id), Path("bench-site.yaml"))
    sim = simulated_site(site, clock, broker=(broker.host, broker.port), any_port=True)
    rows: list[dict[str, Any]] = []
    async with sim:
        live = rebind(site, sim.endpoints())
        base = BaseLoadParams.model_validate(live.config.sim.base_load)
        agent = site_agent(
            live,
            clock,
            broker=broker,
            store_path=workdir / f"{site_id}.sqlite",
            client_id=f"agent-{site_id}",
            forecast=TwinForecast(live, environment(live), base),
        )
        dr = agent.controller
        assert isinstance(dr, DrController)
        first_write: dict[str, float] = {}
        orig_write = agent.writer.write

        async def timed_write(commands: Any) -> Any:
            res = await orig_write(commands)
            target = dr.last_target
            if res and target is not None and target.event_id is not None:
                first_write.setdefault(target.event_id, time.perf_counter())
            return res

        agent.writer.write = timed_write  # type: ignore[method-assign]
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            agent_task = tg.create_task(agent.run(stop))
            t0 = time.perf_counter()
            # Ready as a site in service is: every device read at least once (the 60-s ones
            # too), planned, cycling. Events sent earlier would meet devices still coming
            # online, each of which makes the agent re-solve its baseline plan.
            for _ in range(900):  # at most 90 s
                snap = agent.snapshot()
                polled = all(v.reason != "not polled yet" for v in snap.devices.values())
                if polled and dr.plans >= 1 and agent.cycles >= 2:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # the re-plan those first readings asked for
            _log(
                f"n={n}: agent ready after {time.perf_counter() - t0:.1f} s "
                f"({agent.cycles} cycles, {dr.plans} plans)"
            )
            await asyncio.sleep(1.0)
            # The operator runs in its own process: in this one, the agent's solves block the
            # event loop and would delay reading the responses. perf_counter is CLOCK_MONOTONIC,
            # the same in both processes.
            args = [sys.executable, str(_HERE / "dispatch.py"), "--operator"]
            args += [
                json.dumps([broker.host, broker.port, broker.prefix, site_id, n, k, curtail_kw])
            ]
            proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
            stdout, _ = await proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"the operator process failed (exit {proc.returncode})")
            for r in json.loads(stdout):
                t_pub = r.pop("t_pub")
                r["received_ms"] = _ms(r.pop("t_received"), t_pub)
                r["setpoint_ms"] = _ms(first_write.get(r["event_id"]), t_pub)
                r["opt_in_ms"] = _ms(r.pop("t_answer"), t_pub)
                rows.append(r)
            stop.set()
            await agent_task
            # After the agent stopped, so that its solves do not block the loop meanwhile.
            limit = await measure_limit(broker, sim.endpoints(), live)
    out: dict[str, Any] = {"devices": n, "events": k, "curtail_kw": curtail_kw}
    for key in TARGETS_MS:
        out[key] = summary([r[key] for r in rows if r[key] is not None])
    out["answers"] = {
        a: sum(1 for r in rows if r["answer"] == a) for a in {r["answer"] for r in rows}
    }
    out["no_setpoint"] = sum(1 for r in rows if r["setpoint_ms"] is None)
    out["limit"] = limit
    out["rows"] = [
        {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in rows
    ]
    return out


def _ms(t: float | None, t0: float) -> float | None:
    return None if t is None else (t - t0) * 1000.0


async def drive_events(
    host: str, port: int, prefix: str, site_id: str, n: int, k: int, curtail_kw: float
) -> list[dict[str, Any]]:
    """The operator: k events that start at once, one at a time, each cancelled after its
    answer; returns each event's publish, `received` and answer times (perf_counter)."""
    clock = WallClock()
    rows = []
    client = aiomqtt.Client(host, port, identifier=f"operator-{site_id}", socket_options=NODELAY)
    async with client, asyncio.TaskGroup() as tg:
        op = Operator(client, prefix, site_id)
        await client.subscribe(op.responses_topic, qos=1)
        listener = tg.create_task(op.listen())
        for i in range(k):
            eid = f"bench-{n}-{i}"
            ev = build_event(now=clock.now(), curtail_kw=curtail_kw, duration="PT30M", event_id=eid)
            t_pub = await op.publish(ev.model_dump(mode="json", exclude_none=True))
            answer = await op.wait_for(eid, ("opt_in", "opt_out", "rejected"), 30.0)
            rows.append(
                {
                    "event_id": eid,
                    "answer": answer,
                    "reason": op.reasons.get(eid) if answer != "opt_in" else None,
                    "t_pub": t_pub,
                    "t_received": op.arrivals.get((eid, "received")),
                    "t_answer": op.arrivals.get((eid, answer)),
                }
            )
            await asyncio.sleep(0.05)  # the closed loop's first setpoints may follow the answer
            cancel = build_event(now=clock.now(), cancel=True, event_id=eid, modification=1)
            await op.publish(cancel.model_dump(mode="json", exclude_none=True))
            await op.wait_for(eid, ("cancelled", "completed"), 30.0)
            await asyncio.sleep(0.3 + 0.37 * (i % 7))  # spread over the control phase
        listener.cancel()
    return rows


async def measure_limit(broker: BrokerConfig, endpoints: Any, site: Site) -> dict[str, Any]:
    """MQTT QoS 1 round trip through the broker; one raw pymodbus write to every device."""
    rtts: list[float] = []
    client = aiomqtt.Client(
        broker.host, broker.port, identifier="bench-rtt", socket_options=NODELAY
    )
    async with client:
        await client.subscribe("bench/rtt", qos=1)
        it = client.messages
        for i in range(200):
            t = time.perf_counter()
            await client.publish("bench/rtt", str(i), qos=1)
            await anext(it)
            rtts.append((time.perf_counter() - t) * 1000.0)
    profiles = {d.id: d.profile for d in site.devices}
    targets = []
    for e in endpoints:
        prof = profiles.get(e.id)
        if e.transport != "modbus" or not isinstance(prof, ModbusProfile):
            continue
        pt = next(
            (p for p in prof.points.values() if p.access == "rw" and p.table is Table.holding),
            None,
        )
        if pt is not None:
            targets.append((e, pt.address, e.unit_id or prof.unit_id))
    clients = [AsyncModbusTcpClient(e.host, port=e.port) for e, _, _ in targets]
    await asyncio.gather(*(c.connect() for c in clients))
    values = []
    for c, (_, addr, unit) in zip(clients, targets, strict=True):
        r = await c.read_holding_registers(addr, count=1, device_id=unit)
        values.append(r.registers[0])
    one: list[float] = []
    for _ in range(50):
        c, (_, addr, unit), v = clients[0], targets[0], values[0]
        t = time.perf_counter()
        await c.write_register(addr, v, device_id=unit)
        one.append((time.perf_counter() - t) * 1000.0)
    every: list[float] = []
    for _ in range(30):
        t = time.perf_counter()
        await asyncio.gather(
            *(
                c.write_register(addr, v, device_id=unit)
                for c, (_, addr, unit), v in zip(clients, targets, values, strict=True)
            )
        )
        every.append((time.perf_counter() - t) * 1000.0)
    for c in clients:
        c.close()
    rtt, all_w = summary(rtts), summary(every)
    return {
        "mqtt_rtt_ms": rtt,
        "modbus_write_one_ms": summary(one),
        "modbus_write_every_ms": all_w,
        "written_devices": len(targets),
        "limit_ms": {
            "p50": round(rtt["p50"] + all_w["p50"], 3),
            "p99": round(rtt["p99"] + all_w["p99"], 3),
        },
    }


async def bench(sizes: list[int], k: int, curtail_kw: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vpp-bench-dispatch-") as tmp:
        proc, port = start_mosquitto(Path(tmp))
        try:
            broker = BrokerConfig(host="127.0.0.1", port=port, prefix="vpp")
            results = [await measure_events(n, broker, k, Path(tmp), curtail_kw) for n in sizes]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return {
        "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "targets_ms_at_100": TARGETS_MS,
        "results": results,
    }


def print_table(doc: dict[str, Any]) -> None:
    hdr = f"{'N':>4} {'metric':<12}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'limit p99':>10}"
    print(hdr + f"{'p99/limit':>10}{'target':>8}")
    for r in doc["results"]:
        lim = r["limit"]
        limits = {
            "received_ms": lim["mqtt_rtt_ms"]["p99"],
            "setpoint_ms": lim["limit_ms"]["p99"],
            "opt_in_ms": lim["limit_ms"]["p99"],
        }
        for key, target in TARGETS_MS.items():
            s = r[key]
            if s["n"] == 0:
                print(f"{r['devices']:>4} {key:<12}{'-':>9}")
                continue
            ratio = s["p99"] / limits[key] if limits[key] else float("nan")
            print(
                f"{r['devices']:>4} {key:<12}{s['p50']:>9.1f}{s['p99']:>9.1f}{s['max']:>9.1f}"
                f"{limits[key]:>10.2f}{ratio:>9.0f}x{target:>8.0f}"
            )
        print(
            f"     answers {r['answers']}, events without a setpoint {r['no_setpoint']}; "
            f"limit: MQTT RTT p50 {lim['mqtt_rtt_ms']['p50']:.2f} ms, one write "
            f"{lim['modbus_write_one_ms']['p50']:.2f} ms, write to all "
            f"{lim['written_devices']} {lim['modbus_write_every_ms']['p50']:.2f} ms p50"
        )
    print(f"load average {doc['loadavg']} on {doc['cpus']} CPUs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100", help="device counts, comma-separated")
    ap.add_argument("--events", type=int, default=20, help="events per size")
    ap.add_argument("--curtail-kw", type=float, default=30.0, help="each event's reduction")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--profile", action="store_true", help="cProfile the run (top 30 to stderr)")
    ap.add_argument("--operator", help=argparse.SUPPRESS)  # internal: the operator process
    args = ap.parse_args()
    if args.operator:
        host, port, prefix, site_id, n, k, kw = json.loads(args.operator)
        print(json.dumps(asyncio.run(drive_events(host, port, prefix, site_id, n, k, kw))))
        return
    configure_logging("WARNING")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    prof = cProfile.Profile() if args.profile else None
    if prof:
        prof.enable()
    doc = asyncio.run(bench(sizes, args.events, args.curtail_kw))
    if prof:
        prof.disable()
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(30)
        _log(s.getvalue())
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print_table(doc)


if __name__ == "__main__":
    main()
