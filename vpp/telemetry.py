"""The contract's telemetry message (grid-interface.md §Telemetry) from a snapshot.

Per device only the contract's fields: `online`, `power_kw` (consumption positive; the
meter's import) and the kind's own fields (`soc` for a battery, `plugged` and `energy_kwh`
for an EV charger, `zone_temp_c` and `setpoint_c` for a thermal zone). With the site setting
`grid.extensions: true` also our extension `kind` and, when a device is offline or a reading
was implausible, `reason`. The message is built through vpp.grid.messages.Telemetry (or
ExtendedTelemetry), so what is published always validates.
"""

from __future__ import annotations

import math
from typing import Any

import structlog
from pydantic import ValidationError

from devices.profile import Kind
from vpp.control.types import DeviceView, Snapshot
from vpp.grid.messages import ExtendedDeviceTelemetry, ExtendedTelemetry, Telemetry
from vpp.kinds import plugin_for
from vpp.site import Site

log = structlog.get_logger(__name__)

DECIMALS = 4


def _number(value: float) -> float | None:
    v = float(value)
    return round(v, DECIMALS) if math.isfinite(v) else None


def device_telemetry(kind: Kind, view: DeviceView | None) -> ExtendedDeviceTelemetry:
    """One device's entry: the contract's fields of its kind that the reading has, with the
    extension `kind` and `reason` (`.contract()` drops them).

    A value the contract's ranges refuse (e.g. a SoC of 140 %) is left out and named in
    `reason`; the message itself never fails.
    """
    plugin = plugin_for(kind)
    wire = plugin.wire_kind
    if view is None or not view.usable:
        why = (view.reason if view is not None else "")[:1000] or "no reading"
        return ExtendedDeviceTelemetry(online=False, kind=wire, reason=why)
    fields: dict[str, Any] = {}
    for name, point in plugin.telemetry_fields.items():
        if point not in view.values:
            continue
        raw = view.values[point]
        fields[name] = raw >= 0.5 if name in plugin.boolean_fields else _number(raw)
    fields = {k: v for k, v in fields.items() if v is not None}
    reason = view.reason[:1000] or None
    try:
        return ExtendedDeviceTelemetry(online=True, kind=wire, reason=reason, **fields)
    except ValidationError as exc:
        bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        text = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        log.warning("telemetry_reading_left_out", device_kind=wire, errors=text)
        kept = {k: v for k, v in fields.items() if k not in bad}
        note = f"implausible reading left out: {text}"[:1000]
        try:
            return ExtendedDeviceTelemetry(online=True, kind=wire, reason=note, **kept)
        except ValidationError:
            return ExtendedDeviceTelemetry(online=True, kind=wire, reason=note)


def extended_telemetry(site: Site, snap: Snapshot) -> ExtendedTelemetry:
    """The telemetry message of `snap` with the extension (`site_import_kw` null while the
    meter is offline)."""
    site_import = None if snap.site_import_kw is None else _number(snap.site_import_kw)
    return ExtendedTelemetry(
        ts=snap.ts,
        site_import_kw=site_import,
        devices={d.id: device_telemetry(d.kind, snap.devices.get(d.id)) for d in site.devices},
    )


def telemetry(site: Site, snap: Snapshot) -> Telemetry | ExtendedTelemetry:
    """The telemetry message of `snap` as the site publishes it: exactly the contract's
    fields, or with the extension when the site file says `grid: {extensions: true}`."""
    ext = extended_telemetry(site, snap)
    return ext if site.config.grid.extensions else ext.contract()


def telemetry_message(site: Site, snap: Snapshot) -> dict[str, Any]:
    """`{v, ts, site_import_kw, devices: {id: {online, power_kw, ...}}}` as JSON data (with
    each device's `kind` and `reason` when the site's grid extensions are on)."""
    return telemetry(site, snap).payload()


class TelemetryBuilder:
    """`telemetry_message` for one agent, every telemetry period, without rebuilding what did
    not change: a device's entry is made (through the models) once per reading and reused
    until the next one. Most devices are polled every minute and published every 5 s."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self._entries: dict[str, tuple[tuple[object, ...], dict[str, Any]]] = {}

    def _entry(self, kind: Kind, device_id: str, view: DeviceView | None) -> dict[str, Any]:
        key = (None,) if view is None else (view.read_ts, view.usable, view.reason)
        cached = self._entries.get(device_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        ext = device_telemetry(kind, view)
        entry = ext if self.site.config.grid.extensions else ext.contract()
        data = entry.model_dump(mode="json", exclude_none=True)
        self._entries[device_id] = (key, data)
        return data

    def message(self, snap: Snapshot, *, baseline_kw: float | None = None) -> dict[str, Any]:
        """The same JSON data as `telemetry_message(site, snap)`; with the grid extensions
        also `baseline_kw`, the settlement baseline now of an event it acts in, when given."""
        site_import = None if snap.site_import_kw is None else _number(snap.site_import_kw)
        if self.site.config.grid.extensions:
            base = None if baseline_kw is None else _number(baseline_kw)
            model: Telemetry | ExtendedTelemetry = ExtendedTelemetry(
                ts=snap.ts, site_import_kw=site_import, devices={}, baseline_kw=base
            )
        else:
            model = Telemetry(ts=snap.ts, site_import_kw=site_import, devices={})
        out = model.payload()
        out["devices"] = {
            d.id: self._entry(d.kind, d.id, snap.devices.get(d.id)) for d in self.site.devices
        }
        return out
