"""The one registry of device kinds: kind → its plugin (vpp.kinds.base.KindPlugin)."""

from __future__ import annotations

from vpp.kinds.base import KindPlugin, Registry

REGISTRY = Registry()


def register(plugin: KindPlugin) -> KindPlugin:
    """Add a kind's plugin (each plugin module calls this once, at import)."""
    REGISTRY.add(plugin)
    return plugin
