"""Field types of the grid contract: RFC 3339 times, ISO 8601 durations, ids, kW.

Each type validates strictly: a JSON message can only give a time or a duration as a
string in the contract's format, never as a number; Python callers may pass `datetime` and
`timedelta` objects directly.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BeforeValidator, Field, PlainSerializer, WithJsonSchema

CONTRACT_VERSION = 1
"""The `v` every message carries."""

MAX_MESSAGE_BYTES = 64 * 1024
"""A message longer than this (in bytes, as received) is rejected unread."""

MAX_DURATION = timedelta(days=1)
"""The longest interval duration the contract allows."""

MAX_AHEAD = timedelta(days=7)
"""An interval may not end further than this after the site's `now`."""

CURTAIL_RANGE_KW = (0.0, 100_000.0)
"""Inclusive range of `value` for `curtail_kw`, `import_cap_kw` and `export_cap_kw` (kW)."""

CARBON_RANGE = (0.0, 10.0)
"""Inclusive range of `value` for the `carbon` signal (kg CO2 per kWh; the most carbon-heavy
grids are near 1.2)."""

PRICE_RANGE = (-10_000.0, 10_000.0)
"""Inclusive range of `value` for the `price` signal (currency per kWh)."""

MAX_INTERVALS = 288
"""At most this many intervals per event (a day of 5-minute intervals)."""

ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
"""event_id and device id: 1–64 characters of letters, digits, dot, underscore, hyphen."""

Signal = Literal[
    "curtail_kw", "import_cap_kw", "price", "export_cap_kw", "carbon", "import_target_kw"
]
"""What an event's interval values mean. `export_cap_kw` and `carbon` are this site's
extensions of the contract (docs/grid-messages.md)."""

ResponseStatus = Literal["received", "opt_in", "opt_out", "rejected", "cancelled", "completed"]
"""The status a site answers with."""

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_ISO_DURATION = re.compile(
    r"^(?P<sign>[-+])?P(?!$)(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d{1,6})?)S)?)?$"
)


def parse_time(value: Any) -> datetime:
    """An RFC 3339 time with an explicit offset (`2026-07-15T14:00:00+08:00`, `...Z`).

    A naive time, a number or any other format raises ValueError.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("time has no UTC offset; give one, e.g. 2026-07-15T14:00:00+08:00")
        return _in_range(value)
    if not isinstance(value, str):
        raise ValueError(f"time must be an RFC 3339 string, got {json_kind(value)}")
    text = value.strip()
    if len(text) > 40 or not _RFC3339.match(text):
        if re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$", text):
            raise ValueError(
                f"time {value!r} has no UTC offset; give one, e.g. 2026-07-15T14:00:00+08:00"
            )
        raise ValueError(f"time {value[:40]!r} is not RFC 3339 (2026-07-15T14:00:00+08:00)")
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    # Python < 3.11 handled only 0, 3 or 6 fraction digits; 3.11 accepts any, but cap at µs.
    m = re.match(r"^(.*\.\d{6})\d+(.*)$", text)
    if m:
        text = m.group(1) + m.group(2)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"time {value!r} is not a valid calendar time") from None
    return _in_range(parsed)


def _in_range(value: datetime) -> datetime:
    """Refuse times whose UTC equivalent, or a day after it, leaves datetime's range."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not (_EARLIEST <= utc <= _LATEST):
        raise ValueError(f"time {value.isoformat()} is outside {_EARLIEST.year}–{_LATEST.year}")
    return value


_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def parse_duration(value: Any) -> timedelta:
    """An ISO 8601 duration without years or months (`PT30M`, `PT2H`, `P1D`, `PT0.5S`).

    Returns a timedelta (a leading `-` gives a negative one); anything else (numbers,
    `00:30:00`, `P1M`) raises ValueError. Sign and range are checked by the field that uses it.
    """
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f"duration must be an ISO 8601 string such as PT30M, got {json_kind(value)}"
        )
    m = _ISO_DURATION.match(value) if len(value) <= 40 else None
    if m is None:
        raise ValueError(
            f"duration {value[:40]!r} is not ISO 8601 (PT30M, PT2H, P1D; no years or months)"
        )
    g = {k: (v or "0") for k, v in m.groupdict().items()}
    sign = -1 if g.pop("sign") == "-" else 1
    try:
        return sign * timedelta(
            weeks=int(g["w"]),
            days=int(g["d"]),
            hours=int(g["h"]),
            minutes=int(g["m"]),
            seconds=float(g["s"]),
        )
    except OverflowError:
        raise ValueError(f"duration {value[:40]!r} is out of range") from None


def format_duration(value: timedelta) -> str:
    """The canonical ISO 8601 form of a duration (`PT1H30M`, `P1D`, `PT0.5S`)."""
    if value < timedelta(0):
        return "-" + format_duration(-value)
    days = value.days
    secs = value.seconds
    micros = value.microseconds
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    out = "P" + (f"{days}D" if days else "")
    t = ""
    if h:
        t += f"{h}H"
    if m:
        t += f"{m}M"
    if s or micros:
        t += f"{s}.{micros:06d}".rstrip("0") + "S" if micros else f"{s}S"
    if t:
        out += "T" + t
    return out if out != "P" else "PT0S"


def json_kind(value: Any) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


MAX_INT = 2**53 - 1
"""The largest integer of the contract: the largest a JavaScript client holds exactly (and
well inside SQLite's 64-bit range)."""


def _strict_int(value: Any) -> Any:
    """Reject booleans and floats where an integer is expected (JSON `true` is not 1, and
    `1.0` is not an integer)."""
    if isinstance(value, bool):
        raise ValueError("must be an integer, got a boolean")
    if isinstance(value, float):
        raise ValueError("must be an integer, got a number with a fraction part or exponent")
    return value


Time = Annotated[
    AwareDatetime,
    BeforeValidator(parse_time),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": _RFC3339.pattern,
            "description": "RFC 3339 time with an explicit UTC offset",
        }
    ),
]
"""A timezone-aware time; on the wire an RFC 3339 string with an offset."""

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "format": "duration",
            "pattern": re.sub(r"\(\?P<\w+>", "(", _ISO_DURATION.pattern),
            "description": "ISO 8601 duration (PT30M, PT2H, P1D)",
        }
    ),
]
"""A time span; on the wire an ISO 8601 duration string."""

Version = Annotated[Literal[1], BeforeValidator(_strict_int)]
"""The contract version field `v`: exactly the integer 1."""

Count = Annotated[int, Field(ge=0, le=MAX_INT), BeforeValidator(_strict_int)]
"""A non-negative integer up to 2^53 − 1 (modification, priority, gaps)."""

EventId = Annotated[str, Field(pattern=ID_PATTERN, min_length=1, max_length=64)]
"""A stable event id: 1–64 of A-Za-z0-9._-"""

DeviceId = Annotated[str, Field(pattern=ID_PATTERN, min_length=1, max_length=64)]
"""A device id as in the site file."""

Label = Annotated[str, Field(min_length=1, max_length=64)]
"""A free label of 1–64 characters (program, baseline method)."""

Kw = Annotated[float, Field(allow_inf_nan=False, ge=-1_000_000.0, le=1_000_000.0)]
"""A finite power in kW (consumption positive)."""
