"""MQTT topics of the contract, with their QoS and retain flags."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "vpp"


def topic_level_problem(part: str) -> str | None:
    """Why `part` cannot go into a topic name we publish to (None if it can): MQTT
    wildcards (`+`, `#`) and NUL are not allowed in a topic name, and an empty or leading
    `/` level would make a topic another site could mistake for its own."""
    if not part:
        return "must not be empty"
    bad = sorted({c for c in part if c in "+#\0"})
    if bad:
        shown = ", ".join("NUL" if c == "\0" else repr(c) for c in bad)
        return f"{part!r} has {shown}: MQTT wildcards and NUL are not allowed in a topic"
    if part.startswith("/"):
        return f"{part!r} starts with '/'"
    return None


@dataclass(frozen=True)
class Topic:
    """One contract topic: its name, QoS and whether messages are retained."""

    name: str
    qos: int
    retain: bool


@dataclass(frozen=True)
class SiteTopics:
    """The topics of one site: `PREFIX/SITE/{events,responses,status,telemetry,reports}`, and
    the flexibility offers (`offers`, `offer_requests`)."""

    prefix: str
    site_id: str

    def __post_init__(self) -> None:
        for part, label in ((self.prefix, "broker.prefix"), (self.site_id, "site_id")):
            if problem := topic_level_problem(part):
                raise ValueError(f"{label}: {problem}")

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

    @property
    def offers(self) -> Topic:
        """site → grid: the site's latest flexibility offer, retained (QoS 1)."""
        return self._t("offers", 1, retain=True)

    @property
    def offer_requests(self) -> Topic:
        """grid → site: asks for a fresh offer now (QoS 1)."""
        return self._t("offer_requests", 1)
