"""The status page, its read-only JSON API (described at `/openapi.json`), the live stream
the page follows (server-sent events) and `/metrics`; all read from one vpp.view.SiteView."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.sse import EventSourceResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from devices.clock import Clock
from vpp.grid.messages import ExtendedReport
from vpp.view import (
    Chart,
    DeviceStatus,
    EventStatus,
    PageState,
    PlanRow,
    SiteStatus,
    SiteView,
)
from vpp.web.metrics import AgentCollector

STATIC = Path(str(files("vpp.web") / "static"))
STREAM_PERIOD_S = 2.0
"""How often the live stream sends the page's state."""


def page_state(view: SiteView) -> PageState:
    """Everything the page shows, read at once."""
    return PageState(
        status=view.status(),
        devices=view.devices(),
        events=view.events(),
        plan=view.plan(),
        chart=view.chart(),
    )


def create_app(
    view: SiteView,
    clock: Clock,
    *,
    token: str | None = None,
    stream_period_s: float = STREAM_PERIOD_S,
) -> FastAPI:
    """The web app over `view`. With `token`, every request must carry it (header
    `Authorization: Bearer TOKEN`, or `?token=TOKEN` for the page and its stream); the live
    stream sends every `stream_period_s` of `clock`."""
    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN, and sites are often
    # offline; the description itself is /openapi.json.
    app = FastAPI(
        title="vpp site status",
        summary="Read-only status of one site: devices, events, reports, plan; metrics.",
        version="1",
        docs_url=None,
        redoc_url=None,
    )
    # Set by vpp.web.server.serve when stopping: open streams end at once, cleanly.
    closing = app.state.closing = asyncio.Event()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(view.metrics))

    if token is not None:

        @app.middleware("http")
        async def _auth(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            if request.url.path.startswith("/static/"):
                return await call_next(request)  # the page's code and library: no site data
            given = request.query_params.get("token", "")
            header = request.headers.get("authorization", "")
            if header.lower().startswith("bearer "):
                given = header[7:]
            if not secrets.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"detail": "a valid token is needed"}, status_code=401)
            return await call_next(request)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text())

    @app.get("/api/status", response_model=SiteStatus, summary="The site at a glance")
    async def status() -> SiteStatus:
        return view.status()

    @app.get(
        "/api/devices", response_model=list[DeviceStatus], summary="Every device: health, reading"
    )
    async def devices() -> list[DeviceStatus]:
        return view.devices()

    @app.get("/api/events", response_model=list[EventStatus], summary="Events, newest first")
    async def events() -> list[EventStatus]:
        return view.events()

    @app.get(
        "/api/events/{event_id}/report",
        response_model=ExtendedReport,
        summary="The event's latest report (partial until the final one)",
        responses={404: {"description": "No such event, or no report yet"}},
    )
    async def report(event_id: str) -> ExtendedReport:
        if not any(e.event_id == event_id for e in view.events()):
            raise HTTPException(404, f"no event {event_id!r}")
        rep = view.report(event_id)
        if rep is None:
            raise HTTPException(404, f"event {event_id!r} has no report yet")
        return ExtendedReport.model_validate_json(json.dumps(rep))

    @app.get("/api/plan", response_model=list[PlanRow], summary="The plan for the next hours")
    async def plan() -> list[PlanRow]:
        return view.plan()

    @app.get("/api/chart", response_model=Chart, summary="Site import, baseline, target, plan")
    async def chart() -> Chart:
        return view.chart()

    @app.get("/api/page", response_model=PageState, summary="Everything the page shows")
    async def whole_page() -> PageState:
        return page_state(view)

    # The page's state as server-sent events (each `data:` a PageState, as /api/page). Not
    # in the description: FastAPI describes a stream with OpenAPI 3.2's `itemSchema` in a
    # 3.1 document, which 3.1 validators refuse.
    @app.get("/api/stream", response_class=EventSourceResponse, include_in_schema=False)
    async def stream() -> AsyncIterator[PageState]:
        while not closing.is_set():
            yield page_state(view)
            pause = asyncio.ensure_future(clock.sleep(stream_period_s))
            closed = asyncio.ensure_future(closing.wait())
            try:
                await asyncio.wait({pause, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                pause.cancel()
                closed.cancel()

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
