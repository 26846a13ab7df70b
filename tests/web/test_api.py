"""The JSON API and /metrics of a running agent, served by uvicorn in the agent's loop,
through a whole event on the virtual clock against the simulated office (real Modbus, real
Mosquitto): every answer checked against the server's own OpenAPI description, the metrics'
counters followed as the event is answered, carried out and reported."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import async_playwright
from prometheus_client.parser import text_string_to_metric_families

from devices.clock import VirtualClock, WallClock
from simulators.faults import Faults
from tests.conftest import Broker
from tests.web.openapi_check import check, openapi_of
from vpp.agent_view import AgentView
from vpp.grid.client import build_event
from vpp.replay.harness import Operator, TimedEvent
from vpp.service import site_agent
from vpp.simsite import rebind, simulated_site
from vpp.site import BrokerConfig, load_site
from vpp.web.app import create_app
from vpp.web.server import HttpAddress, bind, run_with_page, url_of

ROOT = Path(__file__).resolve().parents[2]
OFFICE = ROOT / "config" / "sites" / "office.yaml"
START = datetime(2026, 7, 15, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
SEND_AT = START + timedelta(minutes=10)  # well after start-up (time leaps while it connects)
EVENT_START = START + timedelta(minutes=20)
TOKEN = "t0ken-for-the-test"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition: (name, labels) → value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_the_api_answers_by_its_openapi_and_metrics_move_through_an_event(
    fresh_mosquitto: Broker, tmp_path: Path
) -> None:
    clock = VirtualClock(START)
    site = load_site(OFFICE)
    broker = BrokerConfig(host=fresh_mosquitto.host, port=fresh_mosquitto.port)
    sim = simulated_site(site, clock, broker=(broker.host, broker.port), any_port=True)
    event = build_event(
        now=START,
        curtail_kw=60.0,
        start=EVENT_START,
        duration="PT30M",
        interval="PT15M",
        event_id="api-1",
    )
    operator = Operator(clock, broker, site.id)
    async with sim:
        agent = site_agent(
            rebind(site, sim.endpoints()),
            clock,
            broker=broker,
            store_path=tmp_path / "s.sqlite",
            client_id="t-api",
            offers=False,  # about 60 solves a plan period this test of the API does not need
        )
        sock = bind(HttpAddress("127.0.0.1", 0))
        # The stream paces itself on the wall clock here: on the virtual one, it would send
        # at every leap of simulated time (a flood for the browser, no test of the page).
        app = create_app(AgentView(agent), WallClock(), token=TOKEN)
        stop = asyncio.Event()
        ready = asyncio.Event()
        op = asyncio.create_task(
            operator.run([TimedEvent(SEND_AT, json.loads(event.to_json()))], ready)
        )
        await ready.wait()
        run = asyncio.create_task(run_with_page(agent.run, app, sock, stop))
        auth = {"authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=url_of(sock), headers=auth, timeout=30) as http:

            async def fetch(path: str, client: httpx.AsyncClient = http, **kw: Any) -> Any:
                # Simulated time stands still while the test asks (the server is in this loop).
                async with clock.hold():
                    return await client.get(path, **kw)

            async def get(path: str) -> Any:
                return check(api, await fetch(path))

            async def metrics() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
                r = await fetch("/metrics")
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
                return samples(r.text)

            async def until(done: Any, what: str, steps: int = 400) -> None:
                for _ in range(steps):  # bounded: steps × 5 virtual s
                    if done():
                        return
                    await clock.sleep(5)
                raise AssertionError(f"not within {steps * 5} s: {what}")

            spec = (await fetch("/openapi.json")).json()
            api = openapi_of(spec)
            assert {
                "/api/status",
                "/api/devices",
                "/api/events",
                "/api/events/{event_id}/report",
            } <= set(spec["paths"])
            async with httpx.AsyncClient(base_url=url_of(sock)) as anonymous:
                assert (await fetch("/api/status", anonymous)).status_code == 401
                assert (await fetch("/metrics", anonymous)).status_code == 401
                assert (await fetch("/", anonymous)).status_code == 401
                as_query = await fetch("/api/status", anonymous, params={"token": TOKEN})
                assert as_query.status_code == 200
                # The page's code and library carry no site data: served to anyone.
                lib = await fetch("/static/uPlot.iife.min.js", anonymous)
                assert lib.status_code == 200 and "uPlot" in lib.text

            await clock.sleep(60)  # every device read once
            status = await get("/api/status")
            assert status["site_id"] == "office-1" and status["mode"] == "live"
            assert status["broker_connected"] is True and status["site_import_kw"] > 0
            devices = await get("/api/devices")
            assert [d["id"] for d in devices] == [d.id for d in site.devices]
            meter = next(d for d in devices if d["id"] == "meter")
            assert meter["health"] == "online" and meter["values"]["import_power_kw"] > 0
            assert any(d["last_command"] for d in devices)  # the battery's mode at least
            plan = await get("/api/plan")  # the plan for the next 4 h, per 15-min step
            now = clock.now()
            starts = [datetime.fromisoformat(r["start"]) for r in plan]
            assert starts[0] <= now < starts[1] and starts[-1] < now + timedelta(hours=4)
            assert starts[-1] + timedelta(minutes=15) >= now + timedelta(hours=4)
            assert "battery" in plan[0]["power_kw"]
            before = await metrics()
            assert clock.now() < SEND_AT
            assert ("vpp_event_responses_total", (("status", "received"),)) not in before
            assert before[("vpp_broker_connected", ())] == 1.0

            await until(lambda: len(operator.responses) >= 2, "received and opt_in")
            assert [r["status"] for r in operator.responses[:2]] == ["received", "opt_in"]
            events = await get("/api/events")
            assert [(e["event_id"], e["role"], e["status"]) for e in events] == [
                ("api-1", "next", "opt_in")
            ]
            assert [iv["requested_kw"] for iv in events[0]["intervals"]] == [60.0, 60.0]
            for iv in events[0]["intervals"]:  # the baseline is fixed once planned
                assert iv["target_kw"] == iv["baseline_kw"] - 60.0
            answered = await metrics()
            for status_ in ("received", "opt_in"):
                assert answered[("vpp_event_responses_total", (("status", status_),))] == 1.0
            gone = await fetch("/api/events/api-1/report")
            assert gone.status_code == 404 and "no report yet" in gone.json()["detail"]
            check(api, gone)
            unknown = await fetch("/api/events/nope/report")
            assert unknown.status_code == 404

            await until(lambda: clock.now() >= EVENT_START + timedelta(minutes=5), "in event")
            events = await get("/api/events")
            assert events[0]["role"] == "current"
            running = [iv for iv in events[0]["intervals"] if iv["measured"] == "live"]
            assert len(running) == 1 and running[0]["delivered_kw"] is not None
            chart = await get("/api/chart")
            assert any(v is not None for v in chart["target_kw"])
            assert sum(v is not None for v in chart["import_kw"]) >= 5
            during = await metrics()
            assert during[("vpp_event_requested_kw", (("event_id", "api-1"),))] == 60.0
            assert ("vpp_event_delivered_kw", (("event_id", "api-1"),)) in during
            key = ("vpp_device_poll_duration_seconds_count", (("device", "meter"),))
            assert during[key] > answered[key] > before[key] > 0
            solves = ("vpp_plan_solve_seconds_count", ())
            assert during[solves] > before[solves]
            assert during[("vpp_control_cycle_lateness_seconds_count", ())] > 0

            # A device that refuses its reads: its failures counted, its health on the page.
            failures = ("vpp_device_poll_failures_total", (("device", "pv1"),))
            assert during[failures] == 0.0
            async with clock.hold():
                await sim.set_fault("pv1", Faults(exception_code=4))
            for _ in range(60):  # bounded: 60 × 5 virtual s (pv1 is read every 60 s)
                await clock.sleep(5)
                if (await metrics())[failures] > 0:
                    break
            assert (await metrics())[failures] >= 1.0
            pv = next(d for d in await get("/api/devices") if d["id"] == "pv1")
            assert pv["health"] in ("degraded", "offline") and "exception code 4" in pv["reason"], (
                pv
            )

            await until(lambda: operator.reports, "the first interval's report")
            partial = await get("/api/events/api-1/report")
            assert partial["final"] is False and len(partial["intervals"]) == 1
            first = (await get("/api/events"))[0]["intervals"][0]
            assert first["measured"] == "report"
            assert first["delivered_kw"] == partial["intervals"][0]["delivered_kw"]

            await until(
                lambda: any(r["status"] == "completed" for r in operator.responses), "completed"
            )
            final = await get("/api/events/api-1/report")
            assert final["final"] is True and len(final["intervals"]) == 2
            assert (await get("/api/events"))[0]["role"] == "past"
            after = await metrics()
            assert after[("vpp_event_responses_total", (("status", "completed"),))] == 1.0
            assert ("vpp_event_requested_kw", (("event_id", "api-1"),)) not in after

            # The page with the token in its address passes it on to the API and the stream.
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                try:
                    page = await browser.new_page()
                    await page.goto(f"{url_of(sock)}?token={TOKEN}")
                    await page.wait_for_function("window.vppUpdates >= 2", timeout=30_000)
                    assert "api-1" in await page.locator("#events").inner_text()
                    assert await page.locator("#devices tbody tr").count() == 20
                finally:
                    await browser.close()
        stop.set()
        await asyncio.wait_for(run, 30)
        op.cancel()
