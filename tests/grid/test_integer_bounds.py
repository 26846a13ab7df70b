"""Every integer of the contract at its extremes: within 0…2^53 − 1 an event is accepted and
stored; past it, or as a float or a boolean, it gets one `rejected` naming the field, and the
store never sees it (a 2^63 modification once stopped the agent in `Store.save_event`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.grid.helpers import event_dict, interval
from vpp.grid.parse import Rejection, parse_event
from vpp.grid.types import MAX_INT
from vpp.store.store import Store

NOW = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)


def _event(**fields: Any) -> bytes:
    start = (NOW + timedelta(hours=1)).isoformat()
    data = event_dict(intervals=[interval(start, "PT30M", 50)])
    data.update(fields)
    return json.dumps(data).encode()


def _parse(raw: bytes) -> Any:
    return parse_event(raw, NOW)


@settings(max_examples=60, deadline=None)
@given(
    field=st.sampled_from(["modification", "priority"]),
    value=st.one_of(
        st.integers(min_value=0, max_value=MAX_INT),
        st.sampled_from([0, 1, MAX_INT]),
    ),
)
def test_integers_in_range_are_accepted_and_stored(
    tmp_path_factory: Any, field: str, value: int
) -> None:
    parsed = _parse(_event(**{field: value}))
    assert not isinstance(parsed, Rejection), parsed
    store = Store(Path(tmp_path_factory.mktemp("s")) / "s.sqlite")
    try:
        store.save_event(
            NOW, parsed.event_id, parsed.modification, parsed.model_dump(mode="json"), "received"
        )
    finally:
        store.close()


@settings(max_examples=80, deadline=None)
@given(
    field=st.sampled_from(["modification", "priority", "v"]),
    value=st.one_of(
        st.integers(min_value=MAX_INT + 1),
        st.integers(max_value=-1),
        st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**30]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
    ),
)
def test_integers_out_of_range_or_not_integers_are_rejected_by_field(
    field: str, value: Any
) -> None:
    if field == "v" and value == 1 and type(value) is int:
        return  # the one valid version
    parsed = _parse(_event(**{field: value}))  # NaN and Infinity as a sender might write them
    assert isinstance(parsed, Rejection), (field, value)
    assert any(e.loc == field for e in parsed.errors), parsed.errors


def test_a_float_version_is_not_the_integer_one() -> None:
    parsed = _parse(_event(v=1.0))
    assert isinstance(parsed, Rejection) and [e.loc for e in parsed.errors] == ["v"]
