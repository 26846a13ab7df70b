"""The fleet file: the district, its broker, its member sites and the allocation options.

Strict (unknown keys rejected); every error is one line naming the file and the field, e.g.
`district.yaml: sites[2].max_kw: Input should be greater than or equal to 0`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from devices.profile import format_validation_error, read_yaml
from vpp.grid.topics import topic_level_problem
from vpp.site import BrokerConfig

SiteId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class MemberSite(_Strict):
    """One building enrolled in the district."""

    site_id: SiteId
    """The site's id: its agent's topics are `PREFIX/SITE_ID/...`."""
    max_kw: Annotated[float, Field(ge=0.0)] | None = None
    """The most the aggregator ever asks of this site (kW), whatever its offer says."""
    confidence: Fraction | None = None
    """Its delivery record (delivered ÷ asked, 0–1); default: allocation.default_confidence."""


class AllocationOptions(_Strict):
    """How a district request is split across the sites' offers."""

    reliability_margin: Fraction = 1.0
    """How much of each site's uncertainty is covered by over-allocating: 1 counts a site
    only for its 90 % kW (curtail_kw_p90) times its record, 0 for its expected kW."""
    max_site_share: Fraction = 0.35
    """The most of an interval's request the district counts on from one site while others
    can take the rest (a soft cap: beyond it only when they cannot): the loss of one agent
    then costs the district at most this share until its part is re-allocated. 1: least
    cost alone (the cheapest site large enough takes it all)."""
    default_confidence: Fraction = 1.0
    """A site's record (delivered ÷ asked) when the fleet file gives none."""
    opt_out_below: Fraction = 0.5
    """The district opts out when it expects to cover less than this share of the request."""
    shortfall_ratio: Fraction = 0.9
    """A site delivering less than this share of its allocation over a control period is
    short: its shortfall is re-allocated."""
    control_period_s: Annotated[float, Field(gt=0, le=3600)] = 300.0
    """How long a site may stay short before its part is re-allocated (s): a building's
    closed loop needs a minute or two to bring its import down."""


class FleetConfig(_Strict):
    """A fleet file: `vpp aggregate FLEET.yaml`."""

    district_id: SiteId
    """The district's id: upward, the grid sees it as a site of this id."""
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    """The broker of both sides (the sites' agents and the grid); `broker.prefix` is the
    topic prefix of both."""
    sites: Annotated[list[MemberSite], Field(min_length=1)]
    allocation: AllocationOptions = Field(default_factory=AllocationOptions)
    store: Path = Path("data/district.sqlite")
    """The aggregator's SQLite store (events, allocations, responses, reports)."""
    telemetry_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    """The district's telemetry period (s)."""
    data_dir: Path = Path("data")
    """Where the settlement CSV of each event is written at its end."""

    @field_validator("district_id")
    @classmethod
    def _district(cls, v: str) -> str:
        if problem := topic_level_problem(v):
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _distinct(self) -> FleetConfig:
        seen: set[str] = set()
        for i, s in enumerate(self.sites):
            if s.site_id in seen:
                raise ValueError(f"sites[{i}].site_id: {s.site_id!r} is enrolled twice")
            if s.site_id == self.district_id:
                raise ValueError(f"sites[{i}].site_id: {s.site_id!r} is the district's own id")
            seen.add(s.site_id)
        return self

    def member(self, site_id: str) -> MemberSite | None:
        """The enrolled site of that id, if any."""
        return next((s for s in self.sites if s.site_id == site_id), None)


class FleetError(ValueError):
    """A fleet file that cannot be used; the message names the file and the field."""


def parse_fleet(raw: Any, source: Path) -> FleetConfig:
    """Validate fleet data (already parsed from YAML); raise FleetError naming the field."""
    if not isinstance(raw, dict):
        raise FleetError(f"{source}: (top): a fleet file is a mapping")
    try:
        config = FleetConfig.model_validate(raw)
    except ValidationError as e:
        raise FleetError(
            format_validation_error(str(source), e).replace("Value error, ", "")
        ) from e
    if not config.store.is_absolute():
        config = config.model_copy(update={"store": source.parent / config.store})
    if not config.data_dir.is_absolute():
        config = config.model_copy(update={"data_dir": source.parent / config.data_dir})
    return config


def load_fleet(path: str | Path) -> FleetConfig:
    """Read and validate a fleet file."""
    path = Path(path)
    return parse_fleet(read_yaml(path, FleetError), path)
