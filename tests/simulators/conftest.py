"""Helpers for simulator tests: bundled profiles and a site of every Modbus profile."""

from __future__ import annotations

from functools import cache

from devices.profile import ModbusProfile, MqttProfile, load_profile, profile_dir


@cache
def bundled_profiles() -> list[ModbusProfile | MqttProfile]:
    """Every profile file in config/profiles."""
    return [load_profile(p) for p in sorted(profile_dir().glob("*.yaml"))]


def modbus_profiles() -> list[ModbusProfile]:
    """Every bundled Modbus profile."""
    return [p for p in bundled_profiles() if isinstance(p, ModbusProfile)]


def profile(name: str) -> ModbusProfile | MqttProfile:
    """A bundled profile by name."""
    return next(p for p in bundled_profiles() if p.name == name)
