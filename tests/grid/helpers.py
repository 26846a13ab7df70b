"""Shared builders for the grid tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

NOW = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)


def event_dict(**overrides: Any) -> dict[str, Any]:
    """A valid curtail_kw event (two 30-min intervals from 14:00+08:00), with overrides."""
    ev: dict[str, Any] = {
        "v": 1,
        "event_id": "evt-2026.07.15_a",
        "modification": 0,
        "signal": "curtail_kw",
        "intervals": [
            {"start": "2026-07-15T14:00:00+08:00", "duration": "PT30M", "value": 50},
            {"start": "2026-07-15T14:30:00+08:00", "duration": "PT30M", "value": 80.5},
        ],
        "priority": 1,
        "program": "summer-peak",
    }
    ev.update(overrides)
    return ev


def interval(start: Any, duration: Any = "PT30M", value: Any = 10) -> dict[str, Any]:
    """One interval dict."""
    return {"start": start, "duration": duration, "value": value}


def payload(obj: Any) -> bytes:
    """JSON bytes of `obj` (NaN allowed, as a sender might write it)."""
    return json.dumps(obj).encode()
