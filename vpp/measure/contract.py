"""The report message of the grid contract (grid-interface.md §Report) as plain JSON data.

Floats are rounded to `DECIMALS` places and `-0.0` is written as `0.0`, so the same report
always serialises to the same bytes. Times are RFC 3339 with an offset, durations ISO 8601.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vpp.measure.report import EventReport, IntervalReport

CONTRACT_VERSION = 1
DECIMALS = 3

REPORT_FIELDS = (
    "v",
    "event_id",
    "modification",
    "program",
    "baseline_method",
    "intervals",
    "delivered_ratio",
    "comfort_violation_degC_h",
)
"""The contract's report fields (grid-interface.md §Report), exactly."""
INTERVAL_FIELDS = (
    "start",
    "duration",
    "requested_kw",
    "baseline_kw",
    "actual_kw",
    "delivered_kw",
)
"""The contract's fields of one report interval, exactly."""


def report_dict(
    rep: EventReport, *, details: bool = True, ts: datetime | None = None
) -> dict[str, Any]:
    """`rep` as the extended report message (vpp.grid.messages.ExtendedReport); see
    `EventReport.to_contract_dict`; `contract_report` cuts it to exactly the contract's.

    Always the contract's fields plus `signal`; `ts` (when the report was made, RFC 3339)
    when given. With `details`, also the extension: `final`, each interval's `ratio`,
    `shortfall_kw` and `missing`, and the top-level `details` object.
    """
    out: dict[str, Any] = {
        "v": CONTRACT_VERSION,
        "event_id": rep.event_id,
        "modification": rep.modification,
        "program": rep.program,
        "signal": rep.signal,
        "baseline_method": rep.baseline_method,
        "intervals": [_interval_dict(iv, details) for iv in rep.intervals],
        "delivered_ratio": _r(rep.delivered_ratio),
        "comfort_violation_degC_h": _r(rep.comfort_violation_degc_h),
    }
    if ts is not None:
        out["ts"] = ts.isoformat()
    if details:
        out["final"] = rep.final
        out["details"] = _details_dict(rep)
    return out


def contract_report(payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` (a report, possibly with our extension) cut to exactly the contract's fields
    (vpp.grid.messages.Report): no `signal`, `ts`, `final`, `details`, and per interval no
    `ratio`, `shortfall_kw`, `missing`."""
    out = {k: payload[k] for k in REPORT_FIELDS if k != "intervals"}
    out["intervals"] = [{k: iv[k] for k in INTERVAL_FIELDS} for iv in payload["intervals"]]
    return out


def _r(x: float | None) -> float | None:
    if x is None:
        return None
    v = round(x, DECIMALS)
    return 0.0 if v == 0 else v  # no "-0.0" in the bytes


def iso_duration(d: timedelta) -> str:
    """ISO 8601 duration of `d`, e.g. `PT15M`, `PT1H30M`, `P1D`."""
    total = int(d.total_seconds())
    if total <= 0 or d != timedelta(seconds=total):
        raise ValueError(f"duration: {d} is not a positive whole number of seconds")
    days, rest = divmod(total, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    if h or m or s:
        out += "T" + (f"{h}H" if h else "") + (f"{m}M" if m else "") + (f"{s}S" if s else "")
    return out


def _interval_dict(iv: IntervalReport, details: bool) -> dict[str, Any]:
    d: dict[str, Any] = {
        "start": iv.start.isoformat(),
        "duration": iso_duration(iv.duration),
        "requested_kw": _r(iv.requested_kw),
        "baseline_kw": _r(iv.baseline_kw),
        "actual_kw": _r(iv.actual_kw),
        "delivered_kw": _r(iv.delivered_kw),
    }
    if details:
        d["ratio"] = _r(iv.ratio)
        d["shortfall_kw"] = _r(iv.shortfall_kw)
        d["missing"] = {"offline_devices": list(iv.offline_devices), "notes": list(iv.notes)}
    return d


def _details_dict(rep: EventReport) -> dict[str, Any]:
    b = rep.baseline
    baseline: dict[str, Any] | None = None
    if b is not None:
        adj = b.adjustment
        baseline = {
            "method": b.method,
            "days_used": [d.isoformat() for d in b.days_used],
            "days_considered": [d.isoformat() for d in b.days_considered],
            "days_excluded": [{"day": d.isoformat(), "why": why} for d, why in b.excluded],
            "calendar": b.calendar,
            "fallbacks": [{"method": m, "reason": r} for m, r in b.fallbacks],
            "adjustment": None
            if adj is None
            else {
                "mode": adj.mode,
                "window_start": adj.window_start.isoformat(),
                "window_end": adj.window_end.isoformat(),
                "raw": _r(adj.raw),
                "applied": _r(adj.applied),
                "capped": adj.capped,
                "reason": adj.reason,
                # Only when the window moved: a report of an unmoved window keeps its bytes.
                **({"moved": adj.moved} if adj.moved else {}),
            },
            "reason": b.reason,
        }
    return {
        "final": rep.final,
        "signal": rep.signal,
        "requested_kwh": _r(rep.requested_kwh),
        "delivered_kwh": _r(rep.delivered_kwh),
        "baseline": baseline,
        "zones": [
            {"zone_id": z.zone_id, "violation_degC_h": _r(z.violation_degc_h), "gaps": len(z.gaps)}
            for z in rep.zones
        ],
        "devices": [
            {
                "device_id": c.device_id,
                "method": c.method,
                "reference_kw": _r(c.reference_kw),
                "event_energy_kwh": _r(c.event_energy_kwh),
                "reference_energy_kwh": _r(c.reference_energy_kwh),
                "contribution_kwh": _r(c.contribution_kwh),
                "offline_intervals": [t.isoformat() for t in c.offline_starts],
                "note": c.note,
            }
            for c in rep.devices
        ],
        "notes": list(rep.notes),
    }
