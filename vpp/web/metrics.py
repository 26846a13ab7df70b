"""`/metrics`: the agent's counters and gauges (vpp.view.AgentMetrics) as Prometheus metric
families, read from the view at each scrape (a collector: the counts live where the work
happens, nothing is counted twice)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from vpp.view import AgentMetrics


class AgentCollector(Collector):
    """Turns one AgentMetrics reading into metric families (`vpp_` prefix)."""

    def __init__(self, read: Callable[[], AgentMetrics | None]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        m = self._read()
        if m is None:
            return
        poll = SummaryMetricFamily(
            "vpp_device_poll_duration_seconds",
            "Time a device's poll took (read and checks), per device.",
            labels=["device"],
        )
        fails = CounterMetricFamily(
            "vpp_device_poll_failures", "Polls that failed, per device.", labels=["device"]
        )
        for dev, d in sorted(m.devices.items()):
            poll.add_metric([dev], d.polls, d.poll_seconds_total)
            fails.add_metric([dev], d.failures)
        yield poll
        yield fails
        yield SummaryMetricFamily(
            "vpp_control_cycle_lateness_seconds",
            "How late each timed control cycle started after its tick.",
            count_value=m.cycles,
            sum_value=m.cycle_lateness_seconds_total,
        )
        yield GaugeMetricFamily(
            "vpp_control_cycle_lateness_max_seconds",
            "The latest start of a control cycle after its tick since the agent started.",
            value=m.cycle_lateness_seconds_max,
        )
        yield SummaryMetricFamily(
            "vpp_plan_solve_seconds",
            "Solver time of each plan (the optimiser's solve).",
            count_value=m.plans,
            sum_value=m.plan_solve_seconds_total,
        )
        answers = CounterMetricFamily(
            "vpp_event_responses",
            "Responses sent to the grid, by status (received, opt_in, opt_out, ...).",
            labels=["status"],
        )
        for status, n in sorted(m.responses.items()):
            answers.add_metric([status], n)
        yield answers
        delivered = GaugeMetricFamily(
            "vpp_event_delivered_kw",
            "Active events: reduction delivered in the running interval (baseline - import).",
            labels=["event_id"],
        )
        for ev, kw in sorted(m.event_delivered_kw.items()):
            delivered.add_metric([ev], kw)
        yield delivered
        requested = GaugeMetricFamily(
            "vpp_event_requested_kw",
            "Active events: the running interval's requested value (curtailment or cap).",
            labels=["event_id"],
        )
        for ev, kw in sorted(m.event_requested_kw.items()):
            requested.add_metric([ev], kw)
        yield requested
        yield GaugeMetricFamily(
            "vpp_outbox_messages",
            "Messages for the grid queued and not yet acknowledged by the broker.",
            value=m.outbox_depth,
        )
        yield GaugeMetricFamily(
            "vpp_broker_connected",
            "1 while the grid link is connected to the broker, else 0.",
            value=1.0 if m.broker_connected else 0.0,
        )
        yield CounterMetricFamily(
            "vpp_broker_connects",
            "Connections made to the broker since start (1 + reconnects).",
            value=m.broker_connects,
        )
