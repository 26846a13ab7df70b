"""Device health: online, degraded or offline, always with a reason and a start time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class HealthState(StrEnum):
    """How far the agent can trust a device right now."""

    online = "online"
    degraded = "degraded"
    offline = "offline"


@dataclass(frozen=True)
class Health:
    """A device's health since `since` (clock time, UTC).

    `reason` is empty when online; `exception_code` is the Modbus exception code of the last
    refused request (2 illegal address, 4 device failure, ...), else None.
    """

    state: HealthState
    reason: str
    since: datetime
    exception_code: int | None = None
    polled: bool = True
    """False until the device's first poll has ended (answered or failed)."""

    @property
    def usable(self) -> bool:
        """True when the device's last reading can be used for control (online or degraded)."""
        return self.state is not HealthState.offline

    @classmethod
    def online(cls, since: datetime) -> Health:
        """A device that answers."""
        return cls(HealthState.online, "", since)

    @classmethod
    def starting(cls, since: datetime) -> Health:
        """A device not polled yet: offline until its first answer."""
        return cls(HealthState.offline, "not polled yet", since, polled=False)
