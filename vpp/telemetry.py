"""The contract's telemetry message (grid-interface.md §Telemetry) from a snapshot."""

from __future__ import annotations

from typing import Any

from devices.profile import Kind
from vpp.control.types import Snapshot
from vpp.site import Site

# Contract names for kind fields, from canonical point names.
_ALIASES: dict[Kind, dict[str, str]] = {
    Kind.battery: {"soc_pct": "soc"},
    Kind.ev_charger: {"session_energy_kwh": "energy_kwh"},
}


def telemetry_message(site: Site, snap: Snapshot) -> dict[str, Any]:
    """`{v, ts, site_import_kw, devices: {id: {online, power_kw, ...}}}`."""
    devices: dict[str, Any] = {}
    for d in site.devices:
        view = snap.devices.get(d.id)
        entry: dict[str, Any] = {"online": bool(view and view.usable)}
        if view is not None and view.usable:
            for name, value in view.values.items():
                entry[name] = round(float(value), 4)
            for name, alias in _ALIASES.get(d.kind, {}).items():
                if name in view.values:
                    entry[alias] = round(float(view.values[name]), 4)
            if d.kind is Kind.ev_charger and "plugged" in view.values:
                entry["plugged"] = view.values["plugged"] >= 0.5
            if d.kind is Kind.meter and "import_power_kw" in view.values:
                entry["power_kw"] = round(float(view.values["import_power_kw"]), 4)
        devices[d.id] = entry
    site_import = None if snap.site_import_kw is None else round(snap.site_import_kw, 4)
    return {"v": 1, "ts": snap.ts.isoformat(), "site_import_kw": site_import, "devices": devices}
