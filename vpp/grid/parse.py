"""Bytes from the events topic → a valid `Event` or a `Rejection` carrying the one
`rejected` Response to send. Never raises, whatever the bytes.

Order of checks: size (64 KiB), UTF-8, nesting (before parsing, so deep input cannot
exhaust the stack), JSON (duplicate keys rejected), object at the top, nesting deeper than
the schema, then the model with the site's `now` for the 7-days-ahead limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from vpp.grid.messages import CONTRACT_ERROR, Event, FieldError, Response
from vpp.grid.types import ID_PATTERN, MAX_INT, MAX_MESSAGE_BYTES, json_kind

ROOT = "$"
"""`loc` of an error about the whole message rather than one field."""

EVENT_MAX_DEPTH = 3
"""Containers an event may nest: the event object, `intervals`, one interval."""

_SCAN_MAX_DEPTH = 32
"""Nesting refused before JSON parsing (the parser recurses)."""

MAX_ERRORS = 50
"""At most this many field errors in one response; the last one then says how many more."""

MESSAGE_MAX_DEPTH = 5
"""Containers any contract message may nest: a report → intervals → one interval → its
`missing` → `offline_devices` (or → details → devices → one device → offline_intervals)."""

_ID = re.compile(ID_PATTERN)
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Rejection:
    """An event message that is invalid: send `response` (status `rejected`), change nothing."""

    response: Response

    @property
    def errors(self) -> list[FieldError]:
        """The field errors, each naming a `loc` such as `intervals[2].duration`."""
        return self.response.errors


class MessageError(ValueError):
    """A payload that is not a usable JSON object; `errors` say why."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.loc}: {e.msg}" for e in errors))
        self.errors = errors


def parse_event(payload: bytes, now: datetime) -> Event | Rejection:
    """Validate one event message received at `now` (aware) against the contract."""
    try:
        return _parse_event(payload, now)
    except Exception as exc:  # the promise is "never raises": report instead
        return _rejection(
            None, None, [_err(ROOT, f"could not validate the message ({type(exc).__name__})")], now
        )


def failed_handling(event: Event, exc: Exception, now: datetime) -> Rejection:
    """The one `rejected` for a valid event the site could not handle (a fault of ours, not
    of the message): the grid learns it was not carried out, the agent goes on."""
    return _rejection(
        event.event_id,
        event.modification,
        [_err(ROOT, f"the site could not handle this event ({type(exc).__name__})")],
        now,
    )


def _parse_event(payload: bytes, now: datetime) -> Event | Rejection:
    try:
        obj = load_json_object(payload, EVENT_MAX_DEPTH, what="an event")
    except MessageError as exc:
        return _rejection(None, None, exc.errors, now)
    event_id, modification = _echo(obj)
    try:
        return Event.model_validate(obj, context={"now": now})
    except ValidationError as exc:
        return _rejection(event_id, modification, validation_errors(exc), now)


def parse_message(model: type[M], payload: bytes) -> M:
    """Validate bytes as one contract message of type `model` (Response, Report, Status,
    Telemetry, or Event without the `now` checks). Raises MessageError naming bad fields."""
    obj = load_json_object(payload, MESSAGE_MAX_DEPTH, what=f"a {model.__name__.lower()}")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise MessageError(validation_errors(exc)) from None


def load_json_object(payload: bytes, max_depth: int, what: str = "a message") -> dict[str, Any]:
    """Decode UTF-8 JSON bytes into a dict, enforcing size, nesting and unique keys.

    Raises MessageError naming the problem (loc `$` for the whole message, or the path of
    the first container nested deeper than `max_depth`).
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8", "surrogatepass")
    payload = bytes(payload)
    if len(payload) > MAX_MESSAGE_BYTES:
        raise MessageError(
            [_err(ROOT, f"message is {len(payload)} bytes; the limit is {MAX_MESSAGE_BYTES}")]
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageError([_err(ROOT, f"not UTF-8: invalid byte at offset {exc.start}")]) from None
    depth = _scan_depth(text, _SCAN_MAX_DEPTH)
    if depth > _SCAN_MAX_DEPTH:
        raise MessageError(
            [_err(ROOT, f"nested deeper than {_SCAN_MAX_DEPTH} levels; the limit is {max_depth}")]
        )
    try:
        obj = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise MessageError(
            [_err(ROOT, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]
        ) from None
    except _DuplicateKey as exc:
        raise MessageError([_err(ROOT, f"duplicate key {exc.key!r}")]) from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4300 digits
        raise MessageError([_err(ROOT, f"not usable JSON: {str(exc)[:200]}")]) from None
    if not isinstance(obj, dict):
        raise MessageError([_err(ROOT, f"{what} must be a JSON object, got {json_kind(obj)}")])
    too_deep = _first_too_deep(obj, max_depth, 1, ())
    if too_deep is not None:
        raise MessageError(
            [_err(format_loc(too_deep), f"nested deeper than the schema ({max_depth} levels)")]
        )
    return obj


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k[:64])
        out[k] = v
    return out


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


def _scan_depth(text: str, limit: int) -> int:
    """Maximum bracket nesting outside strings, stopping as soon as it passes `limit`."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_JSON_STRING.sub("", text)):
        if m.group() in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        else:
            depth -= 1
    return deepest


def _first_too_deep(
    value: Any, limit: int, depth: int, path: tuple[str | int, ...]
) -> tuple[str | int, ...] | None:
    if depth > limit:
        return path
    items: Sequence[tuple[str | int, Any]]
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return None
    for key, child in items:
        if isinstance(child, dict | list):
            found = _first_too_deep(child, limit, depth + 1, (*path, key))
            if found is not None:
                return found
    return None


def _echo(obj: dict[str, Any]) -> tuple[str | None, int | None]:
    """event_id and modification of a message, when they are themselves valid."""
    eid = obj.get("event_id")
    event_id = eid if isinstance(eid, str) and _ID.match(eid) else None
    mod = obj.get("modification")
    modification = mod if type(mod) is int and 0 <= mod <= MAX_INT else None
    return event_id, modification


def format_loc(loc: Sequence[str | int]) -> str:
    """A pydantic location as a path: ("intervals", 2, "duration") → `intervals[2].duration`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or ROOT


_MESSAGES = {
    "missing": "required field is missing",
    "extra_forbidden": "unknown field",
    "finite_number": "must be a finite number",
    "float_type": "must be a number",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be an array",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
}


def validation_errors(exc: ValidationError) -> list[FieldError]:
    """pydantic errors as contract field errors, with contract checks expanded per field."""
    out: list[FieldError] = []
    for e in exc.errors(include_url=False):
        if e["type"] == CONTRACT_ERROR:
            for loc, msg in e.get("ctx", {}).get("problems", []):
                out.append(_err(loc, msg))
            continue
        kind = e["type"]
        msg = _MESSAGES.get(kind, e["msg"])
        if kind == "finite_number":
            msg += f", got {e.get('input')!r}"
        elif kind in ("too_short", "too_long"):
            msg = f"{e['msg']}".replace("List should have", "must have")
        elif kind in _MESSAGES and kind not in ("missing", "extra_forbidden"):
            msg += f", got {json_kind(e.get('input'))}"
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        out.append(_err(format_loc(e["loc"]), msg))
    return out


def _err(loc: str, msg: str) -> FieldError:
    return FieldError(loc=loc[:200], msg=msg[:500])


def _rejection(
    event_id: str | None, modification: int | None, errors: list[FieldError], now: datetime
) -> Rejection:
    if len(errors) > MAX_ERRORS:
        hidden = len(errors) - (MAX_ERRORS - 1)
        errors = [*errors[: MAX_ERRORS - 1], _err(ROOT, f"and {hidden} more errors")]
    first = errors[0] if errors else _err(ROOT, "invalid message")
    where = "" if first.loc == ROOT else f"{first.loc}: "
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    reason = f"Invalid event message: {where}{first.msg}{more}."
    return Rejection(
        Response(
            event_id=event_id,
            modification=modification,
            status="rejected",
            reason=reason[:1000],
            errors=errors,
            ts=now,
        )
    )
