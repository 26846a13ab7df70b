"""Operator-side look at a site through its broker, behind `vpp status`: the retained status
(is an agent running?) and the site's next telemetry message.

The status is retained, so the broker hands it over as soon as we subscribe; a site that
never ran an agent on this broker and prefix has none, which we can only tell by waiting a
moment (`STATUS_WAIT_S`). Telemetry is not retained: the next message comes within one
telemetry period of a running agent (5 s by default).
"""

from __future__ import annotations

import json
import secrets
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiomqtt

from devices.clock import Clock, timeout
from devices.mqtt_connect import MqttSettings, connect_first
from vpp.grid.topics import DEFAULT_PREFIX, SiteTopics

STATUS_WAIT_S = 1.0
"""How long to wait for a retained status before calling it absent (s): a broker sends
retained messages right after the subscription's acknowledgement."""


@dataclass(frozen=True)
class SiteView:
    """What the broker holds of one site: its retained status and its latest telemetry as
    JSON objects (None when none came), and the topics they came on."""

    site_id: str
    status: dict[str, Any] | None
    telemetry: dict[str, Any] | None

    @property
    def online(self) -> bool:
        """An agent is connected: its retained status says `online: true`."""
        return bool(self.status and self.status.get("online") is True)


def _object(payload: Any) -> dict[str, Any] | None:
    """The payload as a JSON object; an unreadable one becomes `{"unreadable": "..."}` so
    that the operator sees something is there."""
    raw = payload if isinstance(payload, bytes) else str(payload).encode()
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        obj = None
    if isinstance(obj, dict):
        return obj
    return {"unreadable": raw[:200].decode("utf-8", "replace")}


async def next_status(
    clock: Clock, messages: AsyncIterator[aiomqtt.Message], topics: SiteTopics, wait_s: float
) -> dict[str, Any] | None:
    """The site's status from `messages` (subscribed to its status topic), or None when none
    comes within `wait_s` of `clock` time; other topics' messages are skipped."""
    deadline = clock.monotonic() + wait_s
    while (left := deadline - clock.monotonic()) > 0:
        try:
            msg = await timeout(clock, left, anext(messages))
        except TimeoutError:
            return None
        if msg.topic.matches(topics.status.name):
            return _object(msg.payload)
    return None


async def observe_site(
    site_id: str,
    *,
    clock: Clock,
    broker: MqttSettings,
    tls: ssl.SSLContext | None = None,
    prefix: str = DEFAULT_PREFIX,
    wait_s: float = 10.0,
    status_wait_s: float = STATUS_WAIT_S,
) -> SiteView:
    """Read a site's retained status, then, if it is online, wait up to `wait_s` of `clock`
    time for its next telemetry. Broker errors raise aiomqtt.MqttError."""
    topics = SiteTopics(prefix, site_id)
    subscriptions = [(topics.status.name, topics.status.qos), (topics.telemetry.name, 0)]
    async with connect_first(
        broker, subscriptions, identifier=f"vpp-status-{secrets.token_hex(4)}", context=tls
    ) as client:
        messages: AsyncIterator[aiomqtt.Message] = aiter(client.messages)
        status: dict[str, Any] | None = None
        telemetry: dict[str, Any] | None = None
        deadline = clock.monotonic() + wait_s
        status_deadline = clock.monotonic() + min(status_wait_s, wait_s)
        while telemetry is None:
            # Without an online status no agent publishes telemetry: wait only for the status.
            end = deadline if status and status.get("online") is True else status_deadline
            if (left := end - clock.monotonic()) <= 0:
                break
            try:
                msg = await timeout(clock, left, anext(messages))
            except TimeoutError:
                break
            if msg.topic.matches(topics.status.name):
                status = _object(msg.payload)
            elif msg.topic.matches(topics.telemetry.name):
                telemetry = _object(msg.payload)
    return SiteView(site_id, status, telemetry)


def describe(view: SiteView, *, telemetry_expected: bool = True) -> list[str]:
    """The view as lines for a terminal: the status, then the telemetry per device."""
    s = view.status
    if s is None:
        return [
            f"site {view.site_id}: no status on the broker (no agent has run for this site "
            "on this broker and prefix)"
        ]
    state = "online" if view.online else "offline"
    extra = [f"{k} {s[k]}" for k in ("agent_version", "ts", "reason") if s.get(k) is not None]
    lines = [f"site {view.site_id}: {state}" + (f" ({', '.join(extra)})" if extra else "")]
    if "unreadable" in s:
        lines[0] = f"site {view.site_id}: unreadable status {s['unreadable']!r}"
    t = view.telemetry
    if t is None:
        if view.online and telemetry_expected:
            lines.append("no telemetry came within the wait")
        return lines
    imp = t.get("site_import_kw")
    lines.append(
        f"telemetry at {t.get('ts')}: site import "
        + (f"{imp:.1f} kW" if isinstance(imp, int | float) else "unknown")
    )
    devices = t.get("devices")
    for device_id, d in (devices if isinstance(devices, dict) else {}).items():
        if not isinstance(d, dict):
            continue
        if d.get("online") is not True:
            why = f" ({d['reason']})" if d.get("reason") else ""
            lines.append(f"  {device_id:16} offline{why}")
            continue
        power = d.get("power_kw")
        fields = [f"{power:9.1f} kW" if isinstance(power, int | float) else f"{'?':>9} kW"]
        fields += [f"{k} {v}" for k, v in d.items() if k not in ("online", "power_kw", "kind")]
        kind = f"{d['kind']:17}" if isinstance(d.get("kind"), str) else ""
        lines.append(f"  {device_id:16} {kind}online {'  '.join(fields)}")
    return lines
