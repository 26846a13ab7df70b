"""`vpp replay ... --serve`: the same page and JSON API over a finished replay's output folder
(a short scenario with one event), checked against the OpenAPI description; the page in
headless Chromium draws the day (its screenshot in the test's folder; to
docs/img/status-page-replay.png too with VPP_UPDATE_DOCS_IMG=1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from playwright.sync_api import sync_playwright

from tests.web.openapi_check import check, openapi_of
from tests.web.test_status_page import CHROMIUM

ROOT = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOT = ROOT / "docs" / "img" / "status-page-replay.png"

SCENARIO = {
    "name": "web-short",
    "site": str(ROOT / "config" / "sites" / "office.yaml"),
    "timezone": "Asia/Shanghai",
    "start": "2026-07-15T13:30:00+08:00",
    "duration": "PT1H",
    "seed": 1,
    "strategy": "optimiser",
    "history_days": 0,
    "events": [
        {
            "event_id": "short-1",
            "send_at": "PT1M",
            "signal": "curtail_kw",
            "start": "PT10M",
            "duration": "PT30M",
            "interval": "PT15M",
            "value": 60,
        }
    ],
}


def serving_url(proc: subprocess.Popen[str], deadline_s: float = 120.0) -> str:
    """The address from the `serving OUT/ at URL` line on stderr."""
    assert proc.stderr is not None
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        line = proc.stderr.readline()
        if not line:
            raise AssertionError(f"vpp replay ended (exit {proc.wait(5)}) before serving")
        if line.startswith("serving "):
            return line.split(" at ")[1].split()[0]
    raise AssertionError(f"not serving within {deadline_s} s")


def test_replay_serve_shows_the_runs_outputs(tmp_path: Path) -> None:
    scenario = tmp_path / "short.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "vpp", "--json-logs", "replay", scenario, "--out", out),
            *("--quiet", "--no-counterfactual", "--serve", "127.0.0.1:0"),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = serving_url(proc)
        http = httpx.Client(base_url=url, timeout=30)
        api = openapi_of(http.get("/openapi.json").json())
        status = check(api, http.get("/api/status"))
        assert status["mode"] == "replay" and status["now"].startswith("2026-07-15T14:30:00")
        events = check(api, http.get("/api/events"))
        assert [(e["event_id"], e["status"], e["role"]) for e in events] == [
            ("short-1", "completed", "past")
        ]
        report = check(api, http.get("/api/events/short-1/report"))
        assert report["final"] is True and len(report["intervals"]) == 2
        delivered = [iv["delivered_kw"] for iv in events[0]["intervals"]]
        assert delivered == [iv["delivered_kw"] for iv in report["intervals"]]
        devices = check(api, http.get("/api/devices"))
        assert all(d["values"] for d in devices if d["health"] == "online")
        chart = check(api, http.get("/api/chart"))
        assert sum(v is not None for v in chart["import_kw"]) >= 55  # 1-min windows of the hour
        assert check(api, http.get("/api/plan")) == []  # a run's plans are not kept
        assert http.get("/metrics").text == ""  # nothing runs

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(url)
                page.wait_for_function("window.vppUpdates >= 1 && window.vppChart", timeout=30_000)
                assert "short-1" in page.locator("#events").inner_text()
                page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            finally:
                browser.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert (tmp_path / "page.png").stat().st_size > 20_000
    if os.environ.get("VPP_UPDATE_DOCS_IMG") == "1":
        DOCS_SCREENSHOT.write_bytes((tmp_path / "page.png").read_bytes())
