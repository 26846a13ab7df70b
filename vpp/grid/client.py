"""Operator-side helpers behind `vpp event send`: build an event from CLI-style arguments,
publish it to a site and collect the site's responses.

`send_event` subscribes to `PREFIX/SITE/responses` before publishing to
`PREFIX/SITE/events` (both QoS 1), so no answer can be missed, and returns the responses to
this event until a final one (`completed`, `rejected`, `opt_out`, `cancelled`; or those of
`until`) or until `wait_s` of clock time has passed. `send` also reads the site's retained
status first. On a clustered broker it connects to the first node that accepts.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import aiomqtt
import structlog
from pydantic import ValidationError

from devices.clock import Clock, timeout
from devices.mqtt_connect import MqttSettings, connect_first
from vpp.grid.messages import Event, Response
from vpp.grid.observe import next_status
from vpp.grid.parse import MessageError, parse_message, validation_errors
from vpp.grid.topics import DEFAULT_PREFIX, SiteTopics
from vpp.grid.types import format_duration, parse_duration, parse_time

FINAL_STATUSES = frozenset({"completed", "rejected", "opt_out", "cancelled"})
"""After one of these, no further response to the same message is expected."""
ANSWERS = FINAL_STATUSES | {"opt_in"}
"""The site's answer to a message (every status but `received`): what `vpp event send`
waits for. After `opt_in` only `completed` follows, at the event's end."""

log = structlog.get_logger(__name__)
T = TypeVar("T")


def build_event(
    *,
    now: datetime,
    curtail_kw: float | None = None,
    cap_kw: float | None = None,
    price: float | None = None,
    start: datetime | str | None = None,
    duration: timedelta | str | None = None,
    interval: timedelta | str | None = None,
    cancel: bool = False,
    modification: int = 0,
    event_id: str | None = None,
    priority: int | None = None,
    test: bool = False,
    program: str | None = None,
) -> Event:
    """An Event from CLI-style arguments, validated against the contract at `now`.

    Give exactly one of `curtail_kw` (reduction below baseline, kW), `cap_kw` (import ceiling,
    kW) or `price` (per kWh). `start` defaults to `now`; `duration` (ISO 8601 or timedelta) is
    split into intervals of `interval` (default: one interval), the last one shorter if it
    does not divide evenly (the contract allows intervals of any length: `uneven_split`
    says when that happens). An event that would end before `now` is refused (a site
    rejects it); one that has begun is not. A cancel needs only `event_id` and a higher
    `modification`; its intervals (one of 15 minutes from `start`, value 0, when none are
    given) are ignored by the site. `event_id` is generated when absent. Raises ValueError
    naming the bad field.
    """
    values = {"curtail_kw": curtail_kw, "import_cap_kw": cap_kw, "price": price}
    chosen = {signal: v for signal, v in values.items() if v is not None}
    if cancel and not chosen:
        chosen = {"curtail_kw": 0.0}
        duration = duration if duration is not None else timedelta(minutes=15)
    if len(chosen) != 1:
        raise ValueError("give exactly one of curtail_kw, cap_kw or price")
    if duration is None:
        raise ValueError("duration: required (ISO 8601, e.g. PT1H)")
    ((signal, value),) = chosen.items()
    t0 = _arg("start", parse_time, start) if start is not None else now
    total = _arg("duration", parse_duration, duration)
    step = _arg("interval", parse_duration, interval) if interval is not None else total
    if total <= timedelta(0) or step <= timedelta(0):
        raise ValueError("duration and interval must be positive")
    if total / step > 288:
        raise ValueError(f"duration {duration} in intervals of {interval} gives more than 288")
    if not cancel and t0 + total <= now:
        raise ValueError(
            f"start: the event would end at {(t0 + total).isoformat()}, before now "
            f"({now.isoformat()}); a site rejects an event that has already ended"
        )
    intervals: list[dict[str, Any]] = []
    offset = timedelta(0)
    while offset < total:
        length = min(step, total - offset)
        intervals.append({"start": t0 + offset, "duration": length, "value": value})
        offset += length
    data: dict[str, Any] = {
        "v": 1,
        "event_id": event_id or f"evt-{now:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}",
        "modification": modification,
        "signal": signal,
        "intervals": intervals,
        "cancelled": cancel,
        "test": test,
    }
    if priority is not None:
        data["priority"] = priority
    if program is not None:
        data["program"] = program
    try:
        return Event.model_validate(data, context={"now": now})
    except ValidationError as exc:
        errors = validation_errors(exc)
        raise ValueError("; ".join(f"{e.loc}: {e.msg}" for e in errors)) from None


def uneven_split(duration: timedelta | str, interval: timedelta | str | None) -> str | None:
    """A sentence when `interval` does not divide `duration` (build_event then makes the last
    interval shorter), else None. Raises ValueError as build_event does."""
    if interval is None:
        return None
    total = _arg("duration", parse_duration, duration)
    step = _arg("interval", parse_duration, interval)
    if step <= timedelta(0) or total % step == timedelta(0):
        return None
    n = total // step
    return (
        f"interval {format_duration(step)} does not divide duration {format_duration(total)}: "
        f"{n} intervals of {format_duration(step)}, then one of {format_duration(total % step)}"
    )


def _arg(name: str, parse: Callable[[Any], T], value: Any) -> T:
    try:
        return parse(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _payload(event: dict[str, Any] | Event | bytes) -> tuple[bytes, str | None, int | None]:
    """Bytes to publish, and the event_id and modification to match responses against."""
    if isinstance(event, Event):
        return event.to_json(), event.event_id, event.modification
    if isinstance(event, bytes):
        body = event  # sent as is: lets an operator test how a site rejects bad messages
        try:
            obj = json.loads(event)
        except (ValueError, RecursionError):
            obj = None
    else:
        body = json.dumps(event, default=_jsonable).encode()
        obj = event
    if not isinstance(obj, dict):
        return body, None, None
    eid, mod = obj.get("event_id"), obj.get("modification")
    return body, eid if isinstance(eid, str) else None, mod if type(mod) is int else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def _ours(r: Response, event_id: str | None, modification: int | None) -> bool:
    if r.event_id is None:
        return r.status == "rejected"  # the site could not read the id: assume it is ours
    if r.event_id != event_id:
        return False
    return modification is None or r.modification is None or r.modification == modification


@dataclass(frozen=True)
class Sent:
    """What `send` saw: the responses to the event, in arrival order, and the site's
    retained status before the event was published (None: none came, or none was asked)."""

    responses: list[Response]
    site_status: dict[str, Any] | None


async def send_event(
    event: dict[str, Any] | Event | bytes,
    *,
    site_id: str,
    clock: Clock,
    host: str = "127.0.0.1",
    port: int = 1883,
    tls: bool | ssl.SSLContext = False,
    username: str | None = None,
    password: str | None = None,
    prefix: str = DEFAULT_PREFIX,
    wait_s: float = 10.0,
    identifier: str | None = None,
    broker: MqttSettings | None = None,
    until: frozenset[str] = FINAL_STATUSES,
) -> list[Response]:
    """Publish one event message to a site and return its responses, in arrival order.

    `event` may be a validated Event, a dict (sent as given, even if invalid, so that a
    site's rejections can be tried) or raw bytes. Responses are those with this event's
    event_id and modification (and `rejected` ones without an event_id). Collection stops
    after a status in `until` (default: a final one; `ANSWERS` stops at the site's answer
    after `received`) or `wait_s` seconds of `clock` time. `broker` (credentials, TLS
    files: vpp.broker.connection) replaces host, port, tls, username and password. Broker
    errors raise aiomqtt.MqttError.
    """
    sent = await send(
        event,
        site_id=site_id,
        clock=clock,
        broker=broker
        or MqttSettings(host, port, username=username, password=password, tls=tls is not False),
        tls=tls,
        prefix=prefix,
        wait_s=wait_s,
        identifier=identifier,
        until=until,
    )
    return sent.responses


async def send(
    event: dict[str, Any] | Event | bytes,
    *,
    site_id: str,
    clock: Clock,
    broker: MqttSettings,
    tls: bool | ssl.SSLContext = False,
    prefix: str = DEFAULT_PREFIX,
    wait_s: float = 10.0,
    identifier: str | None = None,
    until: frozenset[str] = FINAL_STATUSES,
    status_wait_s: float = 0.0,
) -> Sent:
    """`send_event`, and with `status_wait_s` > 0 first the site's retained status (waited
    for at most that long): an event published while no agent runs waits at the broker."""
    topics = SiteTopics(prefix, site_id)
    body, event_id, modification = _payload(event)
    responses: list[Response] = []
    status: dict[str, Any] | None = None
    subscriptions = [(topics.responses.name, topics.responses.qos)]
    if status_wait_s > 0:
        subscriptions.append((topics.status.name, topics.status.qos))
    async with contextlib.AsyncExitStack() as stack:
        # Time stands still while the broker connects us and confirms the subscriptions.
        async with clock.hold():
            client = await stack.enter_async_context(
                connect_first(
                    broker,
                    subscriptions,
                    identifier=identifier or f"vpp-operator-{secrets.token_hex(4)}",
                    context=tls if isinstance(tls, ssl.SSLContext) else None,
                )
            )
        messages: AsyncIterator[aiomqtt.Message] = aiter(client.messages)
        if status_wait_s > 0:
            status = await next_status(clock, messages, topics, status_wait_s)
        # The first answer comes "at once" by contract: a virtual clock must not leap past
        # wait_s while it is on its way through the broker.
        first_key = f"grid-response:{site_id}:{event_id}:{secrets.token_hex(4)}"
        clock.expect(first_key)
        try:
            await client.publish(topics.events.name, body, qos=topics.events.qos)
            deadline = clock.monotonic() + wait_s
            ours = _Ours(topics, event_id, modification, until)
            await _collect(clock, messages, deadline, ours, responses, first_key)
        finally:
            clock.arrived(first_key)
    return Sent(responses, status)


@dataclass(frozen=True)
class _Ours:
    """Which messages `_collect` keeps, and when it stops."""

    topics: SiteTopics
    event_id: str | None
    modification: int | None
    until: frozenset[str]


async def _collect(
    clock: Clock,
    messages: AsyncIterator[aiomqtt.Message],
    deadline: float,
    ours: _Ours,
    responses: list[Response],
    first_key: str,
) -> None:
    while (left := deadline - clock.monotonic()) > 0:
        try:
            msg = await timeout(clock, left, anext(messages))
        except TimeoutError:
            return
        if not msg.topic.matches(ours.topics.responses.name):
            continue  # the status topic, when it was read first
        raw = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
        try:
            response = parse_message(Response, raw)
        except MessageError as exc:
            log.warning("grid.client.bad_response", topic=str(msg.topic), error=str(exc))
            continue
        if not _ours(response, ours.event_id, ours.modification):
            continue
        if not responses:
            clock.arrived(first_key)
        responses.append(response)
        if response.status in ours.until:
            return
