"""The fleet scenario file (`vpp fleet replay`): a district of buildings, each a site
scenario file (its site, weather, base load, EV visits), over one afternoon, with district
events and faults.

Strict like the site scenario: unknown keys are rejected and every error is one line naming
the file and the field path, e.g. `fleet.yaml: sites[2].max_kw: ...`. The sites' own start,
duration, events, restarts and kills are replaced by the fleet's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from devices.profile import format_validation_error, read_yaml
from vpp.fleet.config import AllocationOptions, SiteId
from vpp.grid.messages import Event
from vpp.replay.scenario import Scenario, ScenarioError, load_scenario
from vpp.replay.scenario_file import FaultWindow, ScenarioEvent, Span, When, build_message, resolve


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class FleetSite(_Strict):
    """One building of the district."""

    scenario: Path
    """Its site scenario file (relative to the fleet scenario)."""
    max_kw: Annotated[float, Field(ge=0.0)] | None = None
    """The most the district ever asks of it (the fleet file's `sites[].max_kw`), whatever
    its agent offers."""


class SiteFault(FaultWindow):
    """A device fault of one site (the site scenario's fault format, plus `site`)."""

    site: SiteId


class AgentKill(_Strict):
    """A site's agent killed at `at` (its connection dropped: the broker says offline)."""

    site: SiteId
    at: When
    restart_at: When | None = None
    """When a new agent starts on its store; none: it stays down."""


class BrokerDown(_Strict):
    """A node of the replay's 3-node NATS cluster (`--broker nats`) killed at `at` (SIGKILL:
    its clients' connections drop; they fail over to the other nodes)."""

    node: Annotated[int, Field(ge=0, le=2)]
    """Which node (0: the aggregator's first; the sites' first are 1 and 2, in turn)."""
    at: When
    restart_at: When | None = None
    """When it starts again on its store; none: it stays down."""


class FleetScenarioConfig(_Strict):
    """A whole fleet scenario file."""

    name: str = ""
    description: str = ""
    district_id: SiteId
    start: AwareDatetime
    duration: Span
    strategy: Literal["optimiser", "rules", "none"] = "optimiser"
    sites: Annotated[list[FleetSite], Field(min_length=1)]
    events: list[ScenarioEvent] = Field(default_factory=list)
    """District events, as the grid sends them to the district (curtail_kw, import_cap_kw)."""
    faults: list[SiteFault] = Field(default_factory=list)
    agent_kills: list[AgentKill] = Field(default_factory=list)
    broker_down: list[BrokerDown] = Field(default_factory=list)
    """Nodes of the NATS cluster taken down (the replay needs `--broker nats`)."""
    allocation: AllocationOptions = Field(default_factory=AllocationOptions)


@dataclass(frozen=True)
class TimedDistrictEvent:
    """A district event message and when the grid sends it."""

    send_at: datetime
    event: Event


@dataclass(frozen=True)
class FleetScenario:
    """A loaded fleet scenario: the file and each site's scenario set to the fleet's time."""

    config: FleetScenarioConfig
    sites: list[Scenario]
    source: Path

    @property
    def start(self) -> datetime:
        return self.config.start

    @property
    def duration(self) -> timedelta:
        return self.config.duration

    def at(self, when: datetime | timedelta) -> datetime:
        return resolve(when, self.start)

    def site(self, site_id: str) -> Scenario:
        return next(s for s in self.sites if s.site.id == site_id)

    def events(self) -> list[TimedDistrictEvent]:
        return sorted(
            (
                TimedDistrictEvent(self.at(e.send_at), build_message(e, self.start))
                for e in self.config.events
            ),
            key=lambda e: e.send_at,
        )

    def with_duration(self, duration: timedelta) -> FleetScenario:
        cfg = self.config.model_copy(update={"duration": duration})
        return FleetScenario(cfg, [s.with_duration(duration) for s in self.sites], self.source)


class FleetScenarioError(ValueError):
    """A fleet scenario that cannot be used; the message names the file and the field."""


def _at_fleet_time(sc: Scenario, cfg: FleetScenarioConfig) -> Scenario:
    """The site scenario on the fleet's start and duration, without events of its own."""
    update: dict[str, Any] = {
        "start": cfg.start,
        "duration": cfg.duration,
        "strategy": cfg.strategy,
        "events": [],
        "agent_kill_at": [],
        "broker_restart_at": [],
    }
    return Scenario(sc.config.model_copy(update=update), sc.site, sc.source, sc.weather_series)


def parse_fleet_scenario(raw: Any, source: Path) -> FleetScenario:
    """Validate fleet scenario data; raise FleetScenarioError naming the field."""
    if not isinstance(raw, dict):
        raise FleetScenarioError(f"{source}: (top): a fleet scenario is a mapping")
    try:
        cfg = FleetScenarioConfig.model_validate(raw)
    except ValidationError as e:
        msg = format_validation_error(str(source), e).replace("Value error, ", "")
        raise FleetScenarioError(msg) from e
    sites: list[Scenario] = []
    for i, s in enumerate(cfg.sites):
        path = s.scenario if s.scenario.is_absolute() else source.parent / s.scenario
        try:
            sites.append(_at_fleet_time(load_scenario(path), cfg))
        except ScenarioError as e:
            raise FleetScenarioError(f"{source}: sites[{i}].scenario: {e}") from e
    ids = [s.site.id for s in sites]
    errors = [
        f"sites[{i}].scenario: site {sid!r} is in the district twice"
        for i, sid in enumerate(ids)
        if sid in ids[:i]
    ]
    errors += [
        f"sites[{i}].scenario: site {sid!r} is the district's own id"
        for i, sid in enumerate(ids)
        if sid == cfg.district_id
    ]
    named = [("faults", i, f.site) for i, f in enumerate(cfg.faults)]
    named += [("agent_kills", i, k.site) for i, k in enumerate(cfg.agent_kills)]
    errors += [f"{w}[{i}].site: no site {s!r} in the district" for w, i, s in named if s not in ids]
    for i, f in enumerate(cfg.faults):
        if f.site in ids and f.device not in {d.id for d in sites[ids.index(f.site)].site.devices}:
            errors.append(f"faults[{i}].device: site {f.site!r} has no device {f.device!r}")
    for i, ev in enumerate(cfg.events):
        if ev.signal not in ("curtail_kw", "import_cap_kw"):
            errors.append(f"events[{i}].signal: a district takes curtail_kw or import_cap_kw")
        try:
            build_message(ev, cfg.start)
        except ValidationError as exc:
            errors.append(f"events[{i}]: {exc.errors()[0]['msg']}")
    if errors:
        raise FleetScenarioError(f"{source}: {errors[0]}")
    return FleetScenario(cfg, sites, source)


def load_fleet_scenario(path: str | Path) -> FleetScenario:
    """Read and validate a fleet scenario file (and the site scenarios it names)."""
    path = Path(path)
    return parse_fleet_scenario(read_yaml(path, FleetScenarioError), path)
