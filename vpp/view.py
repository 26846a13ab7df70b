"""What an operator sees of a site, as plain read-only data: the `SiteView` protocol and its
models. The live agent (vpp.agent_view) and a replay's output folder (vpp.replay.view) each
give one; the web page, the JSON API and the metrics (vpp.web) read nothing else.

Power in kW, consumption positive; times timezone-aware (UTC).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteTarget(_View):
    """The site import the agent keeps under now, and why (site_limit, event, recovery)."""

    import_max_kw: float
    source: str
    event_id: str | None = None


class SiteStatus(_View):
    """The site at a glance."""

    site_id: str
    name: str
    timezone: str
    mode: str = Field(description="live (a running agent) or replay (a replay's outputs)")
    now: datetime
    site_import_kw: float | None = Field(description="The meter's last reading (kW)")
    import_limit_kw: float | None
    target: SiteTarget | None
    strategy: str
    broker_connected: bool | None = Field(description="None: not known (a replay)")
    devices: int
    devices_online: int
    plan_made_at: datetime | None
    outbox_depth: int | None = None


class LastCommand(_View):
    """The last setpoint written to one device."""

    ts: datetime
    point: str
    value: float
    ok: bool
    reason: str = ""


class DeviceStatus(_View):
    """One device: health, last reading (canonical point names) and last command."""

    id: str
    kind: str
    health: str = Field(description="online, degraded or offline")
    reason: str
    since: datetime | None
    read_ts: datetime | None
    values: dict[str, float]
    last_command: LastCommand | None


class EventIntervalStatus(_View):
    """One interval of an event: what was asked, the baseline, the target import and what
    was delivered (from the event's latest report, or measured so far for the running
    interval; None before it)."""

    start: datetime
    end: datetime
    requested_kw: float
    baseline_kw: float | None
    target_kw: float | None
    delivered_kw: float | None
    measured: str | None = Field(description="report, live (running interval) or None")


class EventStatus(_View):
    """A grid event as the agent holds it."""

    event_id: str
    modification: int
    signal: str
    status: str
    program: str | None
    start: datetime
    end: datetime
    role: str = Field(description="current, next, past or later")
    expected_kw: list[float] | None
    delivered_ratio: float | None
    intervals: list[EventIntervalStatus]


class Chart(_View):
    """Aligned series for the chart: times (Unix seconds) and, per time, the site import
    (measured), the baseline and the target of an event, and the plan's predicted import
    (None where a series has no value)."""

    ts: list[float]
    import_kw: list[float | None]
    baseline_kw: list[float | None]
    target_kw: list[float | None]
    plan_kw: list[float | None]


class PlanRow(_View):
    """One step of the current plan: its start, the predicted site import and the planned
    power per device kind (kW, consumption positive: a discharging battery is negative)."""

    start: datetime
    site_import_kw: float
    power_kw: dict[str, float]


class PageState(_View):
    """Everything the page shows at once (what the live stream sends)."""

    status: SiteStatus
    devices: list[DeviceStatus]
    events: list[EventStatus]
    plan: list[PlanRow]
    chart: Chart


class DeviceMetrics(_View):
    """One device's polls since start (seconds of poll time, never reset)."""

    polls: int
    failures: int
    poll_seconds_total: float


class AgentMetrics(_View):
    """Counters and gauges of a running agent, since its start."""

    devices: dict[str, DeviceMetrics]
    cycles: int
    cycle_lateness_seconds_total: float
    cycle_lateness_seconds_max: float
    plans: int
    plan_solve_seconds_total: float
    responses: dict[str, int] = Field(description="Responses sent, by status")
    event_delivered_kw: dict[str, float] = Field(description="Active events: delivered now")
    event_requested_kw: dict[str, float] = Field(
        description="Active events: requested now (the running interval)"
    )
    outbox_depth: int
    broker_connected: bool
    broker_connects: int


class SiteView(Protocol):
    """A read-only view of one site (a running agent or a replay's outputs)."""

    def status(self) -> SiteStatus: ...

    def devices(self) -> list[DeviceStatus]: ...

    def events(self) -> list[EventStatus]: ...

    def report(self, event_id: str) -> dict[str, Any] | None:
        """The event's latest stored report (vpp.grid.messages.ExtendedReport's fields);
        None while it has none, or when there is no such event."""
        ...

    def plan(self) -> list[PlanRow]:
        """The plan's steps for the next hours (none without a plan)."""
        ...

    def chart(self) -> Chart: ...

    def metrics(self) -> AgentMetrics | None:
        """None where nothing runs (a replay's outputs)."""
        ...
