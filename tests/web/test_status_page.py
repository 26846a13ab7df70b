"""The acceptance of the status page: `vpp run --http` against the simulated office (`vpp sim`,
real Mosquitto), the page in headless Chromium (playwright driving Debian's chromium) until
its live chart shows data and an event sent with `vpp event send` shows on it; the
screenshot goes to the test's folder (to docs/img/status-page.png too with
VPP_UPDATE_DOCS_IMG=1, so that `make test` leaves the tree as it was). `/metrics` passes
`promtool check metrics` and its counters move with the event."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from playwright.sync_api import sync_playwright

from tests.conftest import Broker
from tests.test_flood_live import rebound_site
from tests.web.openapi_check import check, openapi_of
from tests.web.test_api import CHROMIUM, samples

ROOT = Path(__file__).resolve().parents[2]
OFFICE = ROOT / "config" / "sites" / "office.yaml"
DOCS_SCREENSHOT = ROOT / "docs" / "img" / "status-page.png"
VPP = [sys.executable, "-m", "vpp", "--json-logs"]


def promtool_check(text: str) -> None:
    """`promtool check metrics` on `text` (exit 0: well-formed, no lint problem)."""
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr


def url_from_log(log: Path, deadline_s: float = 30.0) -> str:
    """The page's address, from the agent's `http_serving` log line."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for line in log.read_text().splitlines():
            if '"http_serving"' in line:
                return str(json.loads(line)["url"])
        time.sleep(0.1)
    raise AssertionError(f"no http_serving line within {deadline_s} s:\n{log.read_text()[-2000:]}")


@dataclass
class Running:
    """The agent with its page at `url`, against the simulated office on `broker`."""

    url: str
    broker: Broker
    agent: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def site_running(fresh_mosquitto: Broker, tmp_path: Path) -> Iterator[Running]:
    """`vpp sim` serving the office on ports from the OS and `vpp run --http 127.0.0.1:0`
    against it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sim = subprocess.Popen(
        [*VPP, "sim", str(OFFICE), "--any-port", "--json", "--broker", fresh_mosquitto.url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    agent: subprocess.Popen[bytes] | None = None
    log = tmp_path / "agent.log"
    try:
        assert sim.stdout is not None
        site_file = rebound_site(tmp_path, json.loads(sim.stdout.readline())["devices"])
        # A flat price: under the office's time-of-use tariff the battery already discharges
        # for the evening peak price (18-21 h Shanghai), so an event then finds no flexibility
        # left and is rightly opted out; the test runs on the wall clock at any hour.
        doc = yaml.safe_load(site_file.read_text())
        doc["tariff"] = {"import_per_kwh": 1.0}
        site_file.write_text(yaml.safe_dump(doc))
        with log.open("wb") as err:
            agent = subprocess.Popen(
                [
                    *(*VPP, "run", site_file, "--broker", fresh_mosquitto.url),
                    *("--data-dir", tmp_path, "--http", "127.0.0.1:0"),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        yield Running(url_from_log(log), fresh_mosquitto, agent, log)
    finally:
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=30)
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)


def test_the_status_page_follows_the_site_live_and_shows_an_event(
    site_running: Running, tmp_path: Path
) -> None:
    screenshot = tmp_path / "status-page.png"
    url, broker = site_running.url, site_running.broker
    http = httpx.Client(base_url=url, timeout=30)
    api = openapi_of(http.get("/openapi.json").json())
    before = http.get("/metrics").text
    promtool_check(before)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
            # The live chart: the meter's import drawn, and more than one update streamed.
            page.wait_for_function(
                "window.vppUpdates >= 2 && window.vppChart"
                " && window.vppChart.data[1].some(v => v !== null)",
                timeout=30_000,
            )
            assert page.locator("#live").inner_text() == "live"
            assert "office-1" in page.locator("#site").inner_text()
            assert page.locator("#devices tbody tr").count() == 20
            # The plan's table: the next 4 h in 15-min steps, once the first plan is made (it
            # waits for every device's first poll: up to 10 s, rebound_site's FIRST_POLL_S).
            page.wait_for_function("window.vppState.plan.length >= 16", timeout=90_000)
            page.wait_for_function(
                "document.querySelectorAll('#plan tbody tr').length >= 16", timeout=10_000
            )
            first_ts = page.evaluate("window.vppState.status.now")
            # The time of the chart's newest import point (the live reading).
            newest_import = (
                "(() => { const d = window.vppChart.data;"
                " return Math.max(...d[0].filter((t, i) => d[1][i] !== null)); })()"
            )
            first_point = page.evaluate(newest_import)

            sent = subprocess.run(
                [
                    *(*VPP, "event", "send", "--site", "office-1", "--curtail-kw", "80"),
                    *("--duration", "PT30M", "--interval", "PT15M", "--event-id", "page-1"),
                    *("--broker", broker.url, "--wait-s", "15"),
                ],
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                capture_output=True,
                text=True,
                timeout=60,
            )
            answers = [json.loads(line) for line in sent.stdout.splitlines() if line.strip()]
            assert [a["status"] for a in answers] == ["received", "opt_in"], (
                [(a["status"], a.get("reason")) for a in answers],
                sent.stderr,
            )

            # The event on the page: its table, and its target drawn on the live chart.
            page.wait_for_function(
                "window.vppState.events.some(e => e.event_id === 'page-1'"
                " && e.role === 'current' && e.intervals[0].delivered_kw !== null)"
                " && window.vppChart.data[3].some(v => v !== null)",
                timeout=30_000,
            )
            table = page.locator("#events").inner_text()
            assert "page-1" in table and "curtail_kw" in table and "opt_in" in table
            assert page.evaluate("window.vppState.status.now") > first_ts
            assert page.evaluate(newest_import) > first_point  # the chart moved on by itself
            assert page.evaluate("window.vppState.status.target.source") == "event"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert screenshot.stat().st_size > 20_000
    if os.environ.get("VPP_UPDATE_DOCS_IMG") == "1":
        DOCS_SCREENSHOT.write_bytes(screenshot.read_bytes())

    for path in ("/api/status", "/api/devices", "/api/events"):
        check(api, http.get(path))
    events = check(api, http.get("/api/events"))
    assert events[0]["event_id"] == "page-1" and events[0]["status"] == "opt_in"

    after = http.get("/metrics").text
    promtool_check(after)
    was, now = samples(before), samples(after)
    for status in ("received", "opt_in"):
        key = ("vpp_event_responses_total", (("status", status),))
        assert was.get(key, 0.0) == 0.0 and now[key] == 1.0
    polls = ("vpp_device_poll_duration_seconds_count", (("device", "meter"),))
    assert now[polls] > was[polls]
    assert now[("vpp_event_requested_kw", (("event_id", "page-1"),))] == 80.0
    assert now[("vpp_broker_connected", ())] == 1.0

    # SIGTERM with the live stream open: the stream ends, the agent exits cleanly.
    with http.stream("GET", "/api/stream") as stream:
        lines = stream.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))
        site_running.agent.send_signal(signal.SIGTERM)
        rest = list(lines)  # returns once the server has closed the stream
    assert site_running.agent.wait(timeout=30) == 0
    log = site_running.log.read_text()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
    assert len([x for x in rest if x.startswith("data: ")]) <= 2
