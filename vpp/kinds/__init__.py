"""Device kinds as plugins: one module per kind holds its dispatch adapter, optimiser asset
builder, forecast, telemetry fields, report role and site-file checks, and registers itself.

Every module of this package is imported here, so a new kind is a new module and nothing
else in the core changes (docs/architecture.md, "How to add a kind").
"""

from __future__ import annotations

import importlib
import pkgutil

from devices.profile import Kind
from vpp.control.flex import Flex
from vpp.kinds.base import KindPlugin, ReportRole
from vpp.kinds.registry import REGISTRY
from vpp.site import Device

_INFRA = {"base", "registry"}
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in _INFRA:
        importlib.import_module(f"{__name__}.{_info.name}")


def plugin_for(kind: Kind) -> KindPlugin:
    """The plugin of `kind` (every `Kind` has one)."""
    try:
        return REGISTRY.by_kind[kind]
    except KeyError:
        raise LookupError(f"no plugin for device kind {kind!r} in vpp.kinds") from None


def plugins() -> list[KindPlugin]:
    """Every registered plugin."""
    return list(REGISTRY.by_kind.values())


def adapter_for(device: Device) -> Flex | None:
    """The dispatch adapter of a controllable device (meters and PV are not knobs)."""
    return plugin_for(device.kind).adapter(device)


_wire_fields: tuple[int, dict[str, frozenset[str]]] = (-1, {})


def wire_kind_fields() -> dict[str, frozenset[str]]:
    """Per wire kind, its own telemetry fields (beyond `online` and `power_kw`); made again
    only when a plugin was registered since (every telemetry entry's validation asks)."""
    global _wire_fields
    count, table = _wire_fields
    if count != len(REGISTRY.by_kind):
        table = {p.wire_kind: frozenset(p.telemetry_fields) - {"power_kw"} for p in plugins()}
        _wire_fields = (len(REGISTRY.by_kind), table)
    return table


__all__ = ["KindPlugin", "ReportRole", "adapter_for", "plugin_for", "plugins", "wire_kind_fields"]
