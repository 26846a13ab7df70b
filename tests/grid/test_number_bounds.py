"""Every number of the contract at its extremes (issue 13): an interval `value` is accepted
exactly when it is a finite number within its signal's range, and is then kept as sent and
stored; anything else (NaN, ±Infinity, 1e308, 2^70, a boolean, a string) gets one rejection
naming `intervals[0].value`. Durations at and past their bounds likewise."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.grid.helpers import event_dict, interval
from vpp.grid.parse import Rejection, parse_event
from vpp.grid.types import CARBON_RANGE, CURTAIL_RANGE_KW, MAX_DURATION, PRICE_RANGE
from vpp.store.store import Store

NOW = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)
START = (NOW + timedelta(hours=1)).isoformat()
RANGES = {
    "curtail_kw": CURTAIL_RANGE_KW,
    "import_cap_kw": CURTAIL_RANGE_KW,
    "price": PRICE_RANGE,
    "export_cap_kw": CURTAIL_RANGE_KW,
    "carbon": CARBON_RANGE,
}

extreme_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from(
        [0.0, -0.0, 5e-324, 1e308, -1e308, 2**53, 2**63, 100_000.0, 100_000.000001, -10_000.0,
         10_000.0, 10_000.5, -10_000.5, 10.0, 10.000001]
    ),
)  # fmt: skip


@settings(max_examples=120, deadline=None)
@given(signal=st.sampled_from(sorted(RANGES)), value=extreme_numbers)
def test_an_interval_value_is_accepted_exactly_within_its_range(
    tmp_path_factory: Any, signal: str, value: float
) -> None:
    data = event_dict(signal=signal, intervals=[interval(START, "PT30M", value)])
    parsed = parse_event(json.dumps(data).encode(), NOW)  # NaN/Infinity as a sender may write
    lo, hi = RANGES[signal]
    valid = math.isfinite(value) and lo <= value <= hi
    if not valid:
        assert isinstance(parsed, Rejection), (signal, value)
        assert [e.loc for e in parsed.errors] == ["intervals[0].value"], parsed.errors
        return
    assert not isinstance(parsed, Rejection), parsed.errors
    assert parsed.intervals[0].value == float(value)
    store = Store(Path(tmp_path_factory.mktemp("s")) / "s.sqlite")
    try:
        store.save_event(
            NOW, parsed.event_id, parsed.modification, parsed.model_dump(mode="json"), "received"
        )
    finally:
        store.close()


@settings(max_examples=40, deadline=None)
@given(value=st.one_of(st.booleans(), st.text(max_size=8), st.none(), st.lists(st.integers())))
def test_a_value_that_is_not_a_number_is_rejected_by_field(value: Any) -> None:
    data = event_dict(intervals=[interval(START, "PT30M", value)])
    parsed = parse_event(json.dumps(data).encode(), NOW)
    assert isinstance(parsed, Rejection)
    assert [e.loc for e in parsed.errors] == ["intervals[0].value"], parsed.errors


@settings(max_examples=40, deadline=None)
@given(
    minutes=st.one_of(st.integers(min_value=-10, max_value=3000), st.sampled_from([0, 1440, 1441]))
)
def test_an_interval_duration_is_accepted_exactly_within_its_bounds(minutes: int) -> None:
    text = f"PT{minutes}M" if minutes >= 0 else f"-PT{-minutes}M"
    data = event_dict(intervals=[interval(START, text, 10)])
    parsed = parse_event(json.dumps(data).encode(), NOW)
    if 0 < minutes <= MAX_DURATION.total_seconds() / 60:
        assert not isinstance(parsed, Rejection), parsed.errors
    else:
        assert isinstance(parsed, Rejection), minutes
        assert [e.loc for e in parsed.errors] == ["intervals[0].duration"], parsed.errors
