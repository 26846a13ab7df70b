"""2.0b events as native contract events (vpp.grid.openadr2b.mapping), table-driven: the
signal mapping, kW from the itemBase, SIMPLE levels, what is not carried out and why, ids,
cancel, priority and test flags; and our answers as opt types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vpp.grid.messages import Event
from vpp.grid.openadr2b.inbound import OadrEvent, Signal, SignalInterval
from vpp.grid.openadr2b.mapping import native_id, opt_answer, to_native
from vpp.grid.parse import parse_event

T0 = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)
LEVELS = {1: 50.0, 2: 100.0, 3: 150.0}


def _signal(
    name: str, kind: str, *values: float, units: str | None = None, scale: str | None = None
) -> Signal:
    ivs = [
        SignalInterval(T0 + timedelta(minutes=15 * i), timedelta(minutes=15), v)
        for i, v in enumerate(values)
    ]
    return Signal(name, kind, ivs, units, scale)


def _event(*signals: Signal, **kw: object) -> OadrEvent:
    fields: dict[str, object] = {
        "event_id": "ev-1",
        "modification": 3,
        "status": "far",
        "start": T0,
        "length": timedelta(minutes=15 * len(signals[0].intervals))
        if signals
        else timedelta(hours=1),
        "signals": list(signals),
    }
    fields.update(kw)
    return OadrEvent(**fields)  # type: ignore[arg-type]


CARRIED_OUT = [
    ("delta", _signal("LOAD_DISPATCH", "delta", 40, 30), "curtail_kw", [40.0, 30.0]),
    ("setpoint", _signal("LOAD_DISPATCH", "setpoint", 250), "import_cap_kw", [250.0]),
    ("lower case name", _signal("load_dispatch", "delta", 5), "curtail_kw", [5.0]),
    (
        "W, scale none",
        _signal("LOAD_DISPATCH", "delta", 40000, units="W", scale="none"),
        "curtail_kw",
        [40.0],
    ),
    (
        "W, scale k",
        _signal("LOAD_DISPATCH", "setpoint", 90, units="W", scale="k"),
        "import_cap_kw",
        [90.0],
    ),
    (
        "W, scale M",
        _signal("LOAD_DISPATCH", "delta", 0.2, units="W", scale="M"),
        "curtail_kw",
        [200.0],
    ),
    ("SIMPLE levels", _signal("SIMPLE", "level", 1, 3, 0), "curtail_kw", [50.0, 150.0, 0.0]),
]


@pytest.mark.parametrize(
    ("case", "signal", "native", "values"), CARRIED_OUT, ids=[c[0] for c in CARRIED_OUT]
)
def test_signals_carried_out(case: str, signal: Signal, native: str, values: list[float]) -> None:
    mapped = to_native(_event(signal), LEVELS)
    assert mapped.payload is not None, mapped.reason
    event = parse_event(mapped.to_json(), T0)  # valid for the native contract
    assert isinstance(event, Event), event
    assert (event.event_id, event.modification, event.signal) == ("oadr2b-ev-1", 3, native)
    assert [iv.value for iv in event.intervals] == pytest.approx(values)
    assert [iv.start for iv in event.intervals] == [iv.start for iv in signal.intervals]
    assert all(iv.duration == timedelta(minutes=15) for iv in event.intervals)


def test_the_first_signal_carried_out_wins_others_ignored() -> None:
    price = _signal("ELECTRICITY_PRICE", "price", 0.3)
    mapped = to_native(_event(price, _signal("SIMPLE", "level", 2)), LEVELS)
    assert mapped.payload is not None and mapped.payload["intervals"][0]["value"] == 100.0


NOT_CARRIED_OUT = [
    ("price only", _signal("ELECTRICITY_PRICE", "price", 0.3), "got ELECTRICITY_PRICE/price"),
    (
        "LOAD_DISPATCH multiplier",
        _signal("LOAD_DISPATCH", "multiplier", 0.5),
        "LOAD_DISPATCH/multiplier",
    ),
    ("level not named", _signal("SIMPLE", "level", 1, 2), "SIMPLE level 2 has no kW"),
    ("fractional level", _signal("SIMPLE", "level", 1.5), "SIMPLE level 1.5 has no kW"),
    (
        "units not a power",
        _signal("LOAD_DISPATCH", "delta", 4, units="USD"),
        "'USD' is not a power",
    ),
]


@pytest.mark.parametrize(
    ("case", "signal", "says"), NOT_CARRIED_OUT, ids=[c[0] for c in NOT_CARRIED_OUT]
)
def test_events_not_carried_out_say_why(case: str, signal: Signal, says: str) -> None:
    levels = {1: 50.0}
    mapped = to_native(_event(signal), levels)
    assert mapped.payload is None
    assert mapped.reason is not None and says in mapped.reason


def test_a_cancel_needs_no_signal_we_understand() -> None:
    mapped = to_native(_event(_signal("ELECTRICITY_PRICE", "price", 1), status="cancelled"), {})
    assert mapped.payload is not None
    event = parse_event(mapped.to_json(), T0)
    assert isinstance(event, Event) and event.cancelled


def test_flags_priority_program_and_ids() -> None:
    sig = _signal("LOAD_DISPATCH", "delta", 10)
    p = to_native(_event(sig, priority=2, test=True, market_context="x" * 80), LEVELS).payload
    assert p is not None and (p["priority"], p["test"], len(p["program"])) == (2, True, 64)
    # 2.0b priority 0 is "none".
    p0 = to_native(_event(sig, priority=0), LEVELS).payload
    assert p0 is not None and "priority" not in p0
    assert native_id("a1b2-c3") == "oadr2b-a1b2-c3"
    odd = native_id("urn:event/42 with spaces")
    assert odd.startswith("oadr2b-h") and len(odd) <= 64 and odd != native_id("urn:event/43")
    assert len(native_id("x" * 60)) <= 64


ANSWERS = [
    ("received", None, None),
    ("completed", None, None),
    ("opt_in", None, ("optIn", 200, "OK")),
    ("cancelled", None, ("optIn", 200, "cancelled")),
    ("opt_out", "no flexibility left", ("optOut", 200, "no flexibility left")),
    (
        "rejected",
        "intervals[0].value: out of range",
        ("optOut", 400, "intervals[0].value: out of range"),
    ),
]


@pytest.mark.parametrize(("status", "reason", "expected"), ANSWERS)
def test_answers_as_opt_types(status: str, reason: str | None, expected: tuple | None) -> None:
    got = opt_answer(status, reason)
    assert (None if got is None else (got.opt_type, got.code, got.description)) == expected


def test_unusable_tls_files_are_one_error_naming_the_field(tmp_path: Path) -> None:
    from devices.clock import WallClock
    from vpp.grid.openadr2b.link import Oadr2bLink
    from vpp.site import OpenAdr2bConfig

    def link(**files: Path) -> None:
        cfg = OpenAdr2bConfig(vtn_url="https://127.0.0.1:1/x", ven_name="v", **files)  # type: ignore[arg-type]
        Oadr2bLink(cfg, "s", WallClock(), levels={})

    with pytest.raises(ValueError, match=r"^grid\.openadr2b\.ca_file: cannot use .*nope\.pem"):
        link(ca_file=tmp_path / "nope.pem")
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(ValueError, match=r"^grid\.openadr2b\.cert_file/key_file: cannot use"):
        link(cert_file=tmp_path / "bad.pem")
    with pytest.raises(ValueError, match=r"^grid\.openadr2b\.key_file: given without cert_file"):
        link(key_file=tmp_path / "bad.pem")
