"""The summary table printed after a replay, and a side-by-side comparison of two replays
(e.g. `--strategy optimiser` against `--strategy rules` on the same scenario)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table


def _num(value: Any, fmt: str = "{:.1f}") -> str:
    if value is None:
        return "–"
    if isinstance(value, float | int):
        return fmt.format(value)
    return str(value)


def _ratio(value: Any) -> str:
    return "–" if value is None else f"{value:.0%}"


EVENT_COLUMNS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("requested kW", "requested_kw", _num),
    ("delivered kW", "delivered_kw", _num),
    ("ratio", "delivered_ratio", _ratio),
    ("min interval", "min_interval_ratio", _ratio),
    ("comfort degC·h", "comfort_violation_degC_h", lambda v: _num(v, "{:.2f}")),
    ("unmet EV kWh", "unmet_ev_kwh", _num),
    ("rebound peak kW", "rebound_peak_kw", _num),
]
RUN_ROWS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("energy cost", "energy_cost", lambda v: _num(v, "{:,.2f}")),
    ("emissions kgCO2", "emissions_kgco2", lambda v: _num(v, "{:,.1f}")),
    ("peak import kW (15 min)", "peak_import_kw", _num),
    ("rebound peak kW", "rebound_peak_kw", _num),
    ("comfort violation degC·h", "comfort_violation_degC_h", lambda v: _num(v, "{:.2f}")),
    ("unmet EV kWh", "unmet_ev_kwh", _num),
    ("simulated h", "simulated_s", lambda v: _num(v / 3600 if v is not None else None)),
    ("wall s", "wall_s", _num),
]


def summary_table(summary: dict[str, Any]) -> Group:
    """Per event: requested and delivered kW, ratios, comfort, unmet EV energy, rebound
    peak; below it the run's cost, emissions, peak import, rebound peak and times."""
    head = f"{summary.get('scenario', '')}: strategy {summary.get('strategy')}"
    events = Table(title=f"{head}, seed {summary.get('seed')}")
    events.add_column("event")
    events.add_column("signal")
    for name, _, _ in EVENT_COLUMNS:
        events.add_column(name, justify="right")
    for ev in summary.get("events", []):
        cells = [fmt(ev.get(key)) for _, key, fmt in EVENT_COLUMNS]
        events.add_row(ev["event_id"], ev["signal"], *cells)
    run = Table(title="run")
    run.add_column("figure")
    run.add_column("value", justify="right")
    currency = summary.get("currency", "")
    for name, key, fmt in RUN_ROWS:
        label = f"{name} ({currency})" if key == "energy_cost" and currency else name
        run.add_row(label, fmt(summary.get(key)))
    return Group(events, run)


def comparison_table(a: dict[str, Any], b: dict[str, Any]) -> Table:
    """Two runs side by side (columns named by strategy), with b − a."""
    name_a, name_b = _label(a), _label(b)
    if name_a == name_b:
        name_a, name_b = f"{name_a} (1)", f"{name_b} (2)"
    t = Table(title=f"{a.get('scenario', '')}: {name_a} vs {name_b}")
    t.add_column("figure")
    t.add_column(name_a, justify="right")
    t.add_column(name_b, justify="right")
    t.add_column("difference", justify="right")
    events_b = {e["event_id"]: e for e in b.get("events", [])}
    for ev in a.get("events", []):
        other = events_b.get(ev["event_id"], {})
        for name, key, fmt in EVENT_COLUMNS:
            if key == "requested_kw" and ev.get(key) != other.get(key):
                # A cap's reduction is measured from each run's own baseline (its own
                # counterfactual): the grid asked both the same, the runs' days differ.
                name = "requested kW (from each run's own baseline)"
            t.add_row(
                f"{ev['event_id']} {name}",
                fmt(ev.get(key)),
                fmt(other.get(key)),
                _diff(ev.get(key), other.get(key), fmt),
            )
        t.add_section()
    for name, key, fmt in RUN_ROWS:
        if key == "wall_s":
            continue
        t.add_row(name, fmt(a.get(key)), fmt(b.get(key)), _diff(a.get(key), b.get(key), fmt))
    return t


def _label(s: dict[str, Any]) -> str:
    return str(s.get("strategy", "run"))


def _diff(x: Any, y: Any, fmt: Callable[[Any], str]) -> str:
    if not isinstance(x, int | float) or not isinstance(y, int | float):
        return "–"
    if fmt is _ratio:
        return f"{(y - x) * 100:+.0f} pp"
    text = fmt(y - x)
    return text if text.startswith("-") else "+" + text


def render(table: RenderableType, width: int = 120) -> str:
    """The table as plain text (no colour codes), e.g. for a test or a log file."""
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, force_terminal=False).print(table)
    return buf.getvalue()
