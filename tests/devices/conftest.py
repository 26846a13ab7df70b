"""Fixtures for driver tests: real pymodbus servers serving bundled profiles."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from devices.clock import Clock
from devices.profile import ModbusProfile, load_profile, profile_dir
from tests.devices.profile_server import ProfileServer

ServeFn = Callable[[ModbusProfile, Clock], Awaitable[ProfileServer]]


def bundled(name: str) -> ModbusProfile:
    p = load_profile(profile_dir() / f"{name}.yaml")
    assert isinstance(p, ModbusProfile)
    return p


@pytest.fixture
async def serve() -> AsyncIterator[ServeFn]:
    """Start ProfileServers on free loopback ports; all are stopped at the end of the test."""
    servers: list[ProfileServer] = []

    async def start(profile: ModbusProfile, clock: Clock) -> ProfileServer:
        s = await ProfileServer(profile, clock).start()
        servers.append(s)
        return s

    yield start
    for s in servers:
        await s.stop()
