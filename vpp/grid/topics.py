"""MQTT topics of the contract, with their QoS and retain flags."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "vpp"


@dataclass(frozen=True)
class Topic:
    """One contract topic: its name, QoS and whether messages are retained."""

    name: str
    qos: int
    retain: bool


@dataclass(frozen=True)
class SiteTopics:
    """The five topics of one site: `PREFIX/SITE/{events,responses,status,telemetry,reports}`."""

    prefix: str
    site_id: str

    def __post_init__(self) -> None:
        for part, label in ((self.prefix, "prefix"), (self.site_id, "site_id")):
            if not part or any(c in part for c in "+#\0") or part.startswith("/"):
                raise ValueError(f"{label} {part!r} is not a valid MQTT topic level")

    def _t(self, leaf: str, qos: int, retain: bool = False) -> Topic:
        return Topic(f"{self.prefix}/{self.site_id}/{leaf}", qos, retain)

    @property
    def events(self) -> Topic:
        """grid → site: event create, modify or cancel (QoS 1)."""
        return self._t("events", 1)

    @property
    def responses(self) -> Topic:
        """site → grid: one response per event message (QoS 1)."""
        return self._t("responses", 1)

    @property
    def status(self) -> Topic:
        """site → grid: retained online status; the last will says offline (QoS 1)."""
        return self._t("status", 1, retain=True)

    @property
    def telemetry(self) -> Topic:
        """site → grid: telemetry every telemetry period (QoS 0)."""
        return self._t("telemetry", 0)

    @property
    def reports(self) -> Topic:
        """site → grid: performance reports (QoS 1)."""
        return self._t("reports", 1)
