"""The site file: one building's devices, limits, user constraints, broker, periods, store.

Strict (unknown keys rejected); every error names the file and the field path, e.g.
`office.yaml: devices[3].port: Input should be less than or equal to 65535`.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from devices.profile import (
    Kind,
    ModbusProfile,
    MqttProfile,
    ProfileError,
    format_validation_error,
    load_profile,
    profile_dir,
    read_yaml,
)
from devices.registry import driver_type, driver_types
from vpp.grid.topics import topic_level_problem
from vpp.measure.programs import SettlementConfig

DeviceId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Port = Annotated[int, Field(ge=0, le=65535)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerConfig(_Strict):
    """The MQTT broker the agent talks to the grid (and MQTT devices) through. Credentials:
    `username` and the password from `password_env` (a variable's name) or `password_file`;
    what the site file leaves unset comes from VPP_MQTT_USERNAME / VPP_MQTT_PASSWORD
    (vpp.broker). TLS: `ca_file` to trust (default: the system's CA store), `cert_file` and
    `key_file` for a client certificate (mTLS). A clustered broker (NATS): `failover` lists
    its other nodes as `HOST:PORT`, moved on to when the connection drops; `protocol` is the
    MQTT version, 3.1.1 (the default, and all that NATS accepts) or 5."""

    host: str = "127.0.0.1"
    port: Port = 1883
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    client_id: str | None = None
    prefix: str = "vpp"
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    failover: Annotated[list[str], Field(max_length=16)] = []

    @field_validator("failover")
    @classmethod
    def _failover(cls, v: list[str]) -> list[str]:
        for i, node in enumerate(v):
            node_address(node, f"[{i}]")
        return v

    def nodes(self) -> list[tuple[str, int]]:
        """Every node as (host, port): `host:port`, then the failover nodes."""
        return [(self.host, self.port), *(node_address(n) for n in self.failover)]

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if problem := topic_level_problem(v):
            raise ValueError(problem)
        return v

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, v: str | None) -> str | None:
        if v is not None and (not v or len(v.encode()) > 65535 or "\0" in v):
            raise ValueError("a client id is 1 to 65535 bytes without NUL")
        return v

    @field_validator("ca_file", "cert_file")
    @classmethod
    def _needs_tls(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if v is not None and not info.data.get("tls"):
            raise ValueError("needs tls: true (or an mqtts:// broker URL)")
        return v

    @field_validator("key_file")
    @classmethod
    def _needs_cert(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if v is not None and info.data.get("cert_file") is None:
            raise ValueError("needs cert_file (the client certificate)")
        return v

    @field_validator("password_file")
    @classmethod
    def _one_password(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if v is not None and info.data.get("password_env"):
            raise ValueError("give password_env or password_file, not both")
        return v

    @classmethod
    def from_url(cls, url: str, base: BrokerConfig | None = None) -> BrokerConfig:
        """`mqtt://[USER@]HOST:PORT` or `mqtts://...` over the site file's broker settings;
        a clustered broker's nodes comma-separated (`mqtt://H1:P1,H2:P2,H3:P3`, the first
        tried first; the rest replace `failover`). A password in the URL is refused: argv
        is visible to every user of the machine."""
        first, more = _first_node(url)
        parsed = urlparse(first)
        if "@" in parsed.netloc and ":" in parsed.netloc.rsplit("@", 1)[0]:
            raise ValueError(
                "--broker: a password in the URL is visible in the process list; give it "
                "with broker.password_env, broker.password_file or VPP_MQTT_PASSWORD"
            )
        try:
            hostname, port = parsed.hostname, parsed.port
        except ValueError as e:
            raise ValueError(f"--broker: {e} in {url}") from None
        if parsed.scheme not in ("mqtt", "mqtts") or not hostname:
            raise ValueError(f"--broker: expected mqtt://HOST:PORT or mqtts://HOST:PORT, got {url}")
        tls = parsed.scheme == "mqtts"
        data = (base or cls()).model_dump()
        data.update(host=hostname, port=port or (8883 if tls else 1883), tls=tls)
        data["failover"] = more
        if parsed.username:
            data["username"] = unquote(parsed.username)
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise ValueError(f"--broker {url}: {broker_error(e)}") from None


def _first_node(url: str) -> tuple[str, list[str]]:
    """`mqtt://[USER@]H1:P1,H2:P2,...` → (`mqtt://[USER@]H1:P1`, [`H2:P2`, ...]): a
    clustered broker's nodes, the first one connected to first."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    first, *more = netloc.split(",")
    if not sep or not more:
        return url, []
    return f"{scheme}://{first}{slash}{path}", more


def node_address(node: str, where: str = "") -> tuple[str, int]:
    """`HOST:PORT` → (host, port); ValueError naming the node otherwise."""
    host, _, port = node.strip().rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"{where}: expected HOST:PORT, got {node!r}".lstrip(": "))
    return host, int(port)


def broker_error(e: ValidationError, label: str = "broker.") -> str:
    """The first error of a BrokerConfig's validation, as `broker.FIELD: message`."""
    err = e.errors()[0]
    msg = str(err["msg"]).removeprefix("Value error, ")
    loc = ".".join(map(str, err["loc"]))
    return f"{label}{loc}: {msg}" if loc else f"{label}{msg}"


class Periods(_Strict):
    """Loop periods in seconds."""

    poll_s: Annotated[float, Field(gt=0, le=3600)] = 1.0
    telemetry_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    plan_s: Annotated[float, Field(gt=0, le=86400)] = 900.0
    control_s: Annotated[float, Field(gt=0, le=3600)] = 5.0


RETENTION_MIN_DAYS = 60
"""The shortest telemetry retention: the like-day baselines' longest look back (45 days,
vpp.measure.programs) and two weeks to spare."""


class StoreConfig(_Strict):
    """Where the SQLite store lives and how finely telemetry is kept."""

    data_dir: Path = Path("data")
    path: Path | None = None
    telemetry_resolution_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    retention_days: Annotated[int, Field(ge=RETENTION_MIN_DAYS, le=36600)] | None = 400
    """Telemetry, commands and health changes older than this are deleted (once a day);
    `null` keeps everything. Events, responses, reports and baselines are always kept: they
    are the settlement record. At least 60 days: like-day baselines look 45 days back."""

    def file(self, site_id: str) -> Path:
        """The database file: `path`, or `<data_dir>/<site_id>.sqlite`."""
        return self.path or self.data_dir / f"{site_id}.sqlite"


class ComfortBand(_Strict):
    """Zone temperature band the building owner accepts (degC)."""

    min_c: float = 22.0
    max_c: float = 26.0

    @model_validator(mode="after")
    def _order(self) -> ComfortBand:
        if self.min_c >= self.max_c:
            raise ValueError("min_c must be below max_c")
        return self


class EvDefaults(_Strict):
    """What to assume about a car when the charger does not say."""

    departure_after_h: Annotated[float, Field(gt=0, le=72)] = 9.0
    energy_needed_kwh: Annotated[float, Field(ge=0, le=200)] = 20.0
    session_counter: Literal["per_session", "cumulative"] = "per_session"
    """How the charger's `session_energy_kwh` counts: `per_session` (reset when a car plugs
    in) or `cumulative` (across cars). A car is credited the counter's rise since it plugged
    in either way; this says what a car already plugged in when the agent starts has had."""


class SiteLimits(_Strict):
    """Grid connection limits and the post-event rebound cap (kW)."""

    import_kw: Annotated[float, Field(gt=0)] = 1000.0
    export_kw: Annotated[float, Field(ge=0)] = 0.0
    import_hard: bool = False
    """True: the optimiser may not plan import past `import_kw` at all (a plan that cannot
    keep it is the fallback's); False (default): passing it is a heavily penalised slack."""
    rebound_cap_kw: Annotated[float, Field(gt=0)] | None = None
    recovery_ramp_kw_per_min: Annotated[float, Field(gt=0)] = 50.0
    zone_release_stagger_s: Annotated[float, Field(ge=0)] = 180.0


class DeviceConfig(_Strict):
    """One device: how to reach it, its profile, its limits and user constraints.

    `type` is the device kind; `driver` the registered driver type that runs it (default:
    the profile's transport, `modbus` or `mqtt`) and `options` that driver's settings;
    `profile` may be left out when the driver needs none.
    """

    id: DeviceId
    type: str
    profile: str | None = None
    driver: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    transport: Literal["modbus", "mqtt"] | None = None
    host: str = "127.0.0.1"
    port: Port = 502
    unit_id: Annotated[int, Field(ge=0, le=255)] | None = None
    poll_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    retries: Annotated[int, Field(ge=0, le=10)] = 1
    limits: dict[str, tuple[float, float]] = Field(default_factory=dict)
    comfort: ComfortBand | None = None
    soc_reserve_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    ev: EvDefaults | None = None
    priority: Annotated[int, Field(ge=0, le=100)] = 50
    shed_cost_per_kwh: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    """Sheddable loads: the value of the service lost per kWh shed (currency/kWh; default
    the planner's `load_shed_cost`)."""
    max_shed_min: Annotated[float, Field(gt=0, le=1440)] | None = None
    """Sheddable loads: the longest it may stay shed at a time (minutes; default 240)."""
    min_rest_min: Annotated[float, Field(ge=0, le=1440)] | None = None
    """Sheddable loads: how long it must run again before the next shed (minutes; default 0)."""
    dr_only: bool | None = None
    """Sheddable loads: True (default) sheds only for grid events and site limits, never
    for tariff savings; False lets the plan shed it whenever that pays."""
    sim: dict[str, Any] | None = None
    faults: dict[str, Any] | None = None

    @field_validator("limits")
    @classmethod
    def _limits_ordered(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for point, (lo, hi) in v.items():
            if lo > hi:
                raise ValueError(f"{point}: lower limit {lo} is above upper limit {hi}")
        return v


HourlyOrConstant = float | Annotated[list[float], Field(min_length=24, max_length=24)]

# A Shanghai-like commercial time-of-use tariff (CNY/kWh): valley 22-06, peak 10-15 and 18-21.
SHANGHAI_TOU = [
    0.32, 0.32, 0.32, 0.32, 0.32, 0.32, 0.72, 0.72, 0.72, 0.72, 1.15, 1.15,
    1.15, 1.15, 1.15, 0.72, 0.72, 0.72, 1.15, 1.15, 1.15, 0.72, 0.32, 0.32,
]  # fmt: skip


class Tariff(_Strict):
    """Energy prices (currency/kWh, by local hour or constant) and grid carbon intensity."""

    import_per_kwh: HourlyOrConstant = Field(default_factory=lambda: list(SHANGHAI_TOU))
    export_per_kwh: HourlyOrConstant = 0.0
    carbon_kg_per_kwh: HourlyOrConstant = 0.58
    carbon_price_per_kg: Annotated[float, Field(ge=0)] = 0.0
    demand_charge_per_kw: Annotated[float, Field(ge=0)] = 0.0

    @staticmethod
    def at_hour(series: HourlyOrConstant, hour: int) -> float:
        return float(series) if isinstance(series, float | int) else float(series[hour % 24])


class SimSite(_Strict):
    """Site-level simulation inputs (only `vpp sim` and replay read them)."""

    base_load: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)
    step_s: Annotated[float, Field(gt=0, le=3600)] = 1.0
    seed: int = 0


HttpUrl = Annotated[str, Field(min_length=1, pattern=r"^https?://[^\s/]+(/\S*)?$")]


class OpenAdr3Config(_Strict):
    """An OpenADR 3.1 VEN link (docs/openadr.md): the VTN at `vtn_url` (the spec's paths are
    relative to it), OAuth2 client credentials `client_id` and the secret from the
    environment variable `client_secret_env`, the VEN object named `ven_name`."""

    vtn_url: HttpUrl
    client_id: Annotated[str, Field(min_length=1)]
    client_secret_env: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    ven_name: Annotated[str, Field(min_length=1, max_length=128)]
    poll_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    ca_file: Path | None = None
    """A CA to trust for an https VTN (default: the system's CA store)."""


class OpenAdr2bConfig(_Strict):
    """An OpenADR 2.0b VEN link (docs/openadr.md): the VTN's EiEvent/EiRegisterParty/...
    service root at `vtn_url`, the VEN named `ven_name`. `poll_s` unset: the VTN's requested
    poll frequency. `cert_file`/`key_file` for 2.0b's mutual TLS, `ca_file` to trust;
    `sign` and `vtn_cert_file` for 2.0b's XML signatures."""

    vtn_url: HttpUrl
    ven_name: Annotated[str, Field(min_length=1, max_length=128)]
    poll_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    sign: Annotated[bool, Field(strict=True)] = False
    """Sign every message we send (XML-DSig with ReplayProtect) with `cert_file`/`key_file`."""
    vtn_cert_file: Path | None = None
    """The VTN's signing certificate (PEM): every VTN answer must carry a valid signature
    by it, else it is refused (one log line, a retry)."""

    @model_validator(mode="after")
    def _signing_key(self) -> OpenAdr2bConfig:
        if self.sign and (self.cert_file is None or self.key_file is None):
            raise ValueError("sign: true needs cert_file and key_file (the VEN's signing key)")
        return self


class OfferConfig(_Strict):
    """Flexibility offers (docs/grid-messages.md, "Flexibility offers"): the site publishes
    what it can shed after each plan period and on request."""

    enabled: Annotated[bool, Field(strict=True)] = True
    """False: no offers published, offer requests ignored."""
    horizon_h: Annotated[float, Field(gt=0, le=12)] = 4.0
    """Window starts over this many hours from the notice on."""
    start_every_min: Annotated[int, Field(ge=15, le=720, multiple_of=15)] = 60
    """Minutes between two window starts (each start × 15 min, 30 min, 1 h, 2 h, 4 h)."""
    notice_min: Annotated[int, Field(ge=0, le=1440)] = 15
    """The least time between an event's arrival and its start the site needs (minutes):
    the first window starts on the quarter hour this far ahead."""


class GridConfig(_Strict):
    """The site's grid links and what it publishes to the grid operator
    (docs/grid-messages.md, docs/openadr.md)."""

    mqtt: Annotated[bool, Field(strict=True)] = True
    """Our native MQTT contract (docs/grid-messages.md); false: only the OpenADR links."""
    openadr3: OpenAdr3Config | None = None
    openadr2b: OpenAdr2bConfig | None = None
    simple_levels_kw: dict[Annotated[int, Field(ge=1, le=3)], Annotated[float, Field(ge=0)]] = (
        Field(default_factory=dict)
    )
    """kW to shed for OpenADR SIMPLE levels 1-3 (both versions); a level not named here is
    ignored (logged) for its event."""

    offers: OfferConfig = OfferConfig()
    """Flexibility offers on `PREFIX/SITE/offers` (the native MQTT contract only)."""
    extensions: Annotated[bool, Field(strict=True)] = False
    """False (default): status, telemetry and reports carry exactly the contract's fields
    (grid-interface.md), so a strict receiver accepts them. True: also this site's extension
    fields (report `signal`, `ts`, `final`, `details`, per-interval `ratio`, `shortfall_kw`,
    `missing` with the shortfall notes; device `kind` and `reason`; status `ts`, `site_id`,
    `agent_version`, `reason`)."""

    @model_validator(mode="after")
    def _some_link(self) -> GridConfig:
        if not self.mqtt and self.openadr3 is None and self.openadr2b is None:
            raise ValueError("mqtt: false needs openadr3 or openadr2b: the site has no grid link")
        return self


class SiteConfig(_Strict):
    """A whole site file."""

    site_id: DeviceId
    name: str = ""
    timezone: str = "UTC"
    broker: BrokerConfig | None = None
    grid: GridConfig = GridConfig()
    periods: Periods = Periods()
    store: StoreConfig = StoreConfig()
    limits: SiteLimits = SiteLimits()
    tariff: Tariff = Tariff()
    settlement: SettlementConfig = SettlementConfig()
    """How each DR program's reported baseline is made (vpp.measure.programs)."""
    devices: Annotated[list[DeviceConfig], Field(min_length=1)]
    sim: SimSite = SimSite()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {v!r}") from e
        return v

    @field_validator("devices")
    @classmethod
    def _unique_ids(cls, v: list[DeviceConfig], info: ValidationInfo) -> list[DeviceConfig]:
        seen: set[str] = set()
        for d in v:
            if d.id in seen:
                raise ValueError(f"duplicate device id {d.id!r}")
            seen.add(d.id)
        return v


class SiteError(ValueError):
    """A site file that cannot be used; the message names the file and the field path."""


class Device(BaseModel):
    """A device of a loaded site: its configuration with the profile resolved.

    Built as `Device(config=..., profile=...)`; `profile` is None for a device whose driver
    needs none (`profile_or_none` says which).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True, populate_by_name=True)

    config: DeviceConfig
    profile_or_none: ModbusProfile | MqttProfile | None = Field(default=None, alias="profile")

    @cached_property
    def id(self) -> str:
        """The device's id (cached: the control cycle asks for it hundreds of times)."""
        return self.config.id

    @property
    def profile(self) -> ModbusProfile | MqttProfile:
        """The device's profile; SiteError for a device whose driver runs none."""
        if self.profile_or_none is None:
            raise SiteError(f"devices.{self.id}: the {self.driver} driver runs no profile")
        return self.profile_or_none

    @property
    def driver(self) -> str:
        """The registered driver type that runs it: `driver`, else the profile's transport."""
        if self.config.driver is not None:
            return self.config.driver
        return self.profile_or_none.transport if self.profile_or_none else "modbus"

    @property
    def kind(self) -> Kind:
        p = self.profile_or_none
        return p.kind if p is not None else Kind(self.config.type)

    @property
    def unit_id(self) -> int:
        if self.config.unit_id is not None:
            return self.config.unit_id
        p = self.profile_or_none
        return p.unit_id if isinstance(p, ModbusProfile) else 0


class Site(BaseModel):
    """A validated site: configuration, resolved profiles, and where it came from."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    config: SiteConfig
    devices: list[Device]
    source: Path

    @property
    def id(self) -> str:
        return self.config.site_id

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.config.timezone)

    def device(self, device_id: str) -> Device:
        for d in self.devices:
            if d.id == device_id:
                return d
        raise KeyError(device_id)

    def by_kind(self, kind: Kind) -> list[Device]:
        return [d for d in self.devices if d.kind is kind]


def _resolve_profile(name: str, base: Path) -> Path:
    candidates = [Path(name), base / name, profile_dir() / f"{name}.yaml", profile_dir() / name]
    for c in candidates:
        if c.suffix in (".yaml", ".yml") and c.is_file():
            return c
    raise FileNotFoundError(name)


def kind_checks(kind: Kind, dc: DeviceConfig) -> list[tuple[str, str]]:
    """The kind plugin's checks of a device (vpp.kinds): a section that only other kinds may
    carry (`comfort` on a battery), and the kind's own checks, as (field, message)."""
    from vpp.kinds import plugin_for, plugins  # the plugins import this module

    own = plugin_for(kind)
    out: list[tuple[str, str]] = []
    seen: set[str] = set(own.sections)
    for p in plugins():
        for section, message in p.sections.items():
            if section not in seen and getattr(dc, section, None) is not None:
                out.append((section, message))
            seen.add(section)
    return out + own.check(dc)


def parse_site(raw: Any, source: Path) -> Site:
    """Validate site data (already parsed from YAML); raise SiteError naming the field."""
    if not isinstance(raw, dict):
        raise SiteError(f"{source}: (top): a site file is a mapping")
    try:
        config = SiteConfig.model_validate(raw)
    except ValidationError as e:
        raise SiteError(format_validation_error(str(source), e)) from e
    errors: list[str] = []
    if problem := _foreign_client_id(config):
        errors.append(f"{source}: broker.client_id: {problem}")
    devices: list[Device] = []
    for i, dc in enumerate(config.devices):
        where = f"{source}: devices[{i}]"
        profile: ModbusProfile | MqttProfile | None = None
        if dc.profile is not None:
            try:
                profile = load_profile(_resolve_profile(dc.profile, source.parent))
            except FileNotFoundError:
                errors.append(f"{where}.profile: no profile named {dc.profile!r}")
                continue
            except ProfileError as e:
                errors.append(f"{where}.profile: {e}")
                continue
        kind = _device_kind(dc, profile, where, errors)
        if kind is None:
            continue
        if profile is not None:
            if dc.transport is not None and dc.transport != profile.transport:
                errors.append(
                    f"{where}.transport: {dc.transport} does not match profile "
                    f"{profile.name!r} ({profile.transport})"
                )
            for point in dc.limits:
                if point not in profile.points:
                    errors.append(
                        f"{where}.limits.{point}: profile {profile.name!r} has no such point"
                    )
        if kind is not None:
            errors += [f"{where}.{f}: {msg}" for f, msg in kind_checks(kind, dc)]
        devices.append(Device(config=dc, profile=profile))
    errors += _shared_addresses(devices, config.devices, source)
    if errors:
        raise SiteError("\n".join(errors))
    return Site(config=config, devices=devices, source=source)


def _shared_addresses(
    devices: list[Device], configs: list[DeviceConfig], source: Path
) -> list[str]:
    """Two Modbus devices at one host, port and unit id would read and write each other's
    registers (one gateway serves several devices only under distinct unit ids)."""
    errors: list[str] = []
    first: dict[tuple[str, int, int], int] = {}
    index = {id(c): i for i, c in enumerate(configs)}
    for d in devices:
        if d.driver != "modbus" or d.config.port == 0:  # port 0: the OS gives each its own
            continue
        i = index[id(d.config)]
        key = (d.config.host, d.config.port, d.unit_id)
        if key in first:
            j = first[key]
            errors.append(
                f"{source}: devices[{i}]: host {key[0]}, port {key[1]} and unit_id {key[2]} "
                f"are those of devices[{j}] ({configs[j].id}): give each its own port or unit_id"
            )
        else:
            first[key] = i
    return errors


def _foreign_client_id(config: SiteConfig) -> str | None:
    """`vpp-<site id>` is the default client id of the site of that id: a site file copied
    from another that kept its id would take that site's MQTT session again and again."""
    cid = config.broker.client_id if config.broker else None
    if not cid or not cid.startswith("vpp-") or cid == f"vpp-{config.site_id}":
        return None
    return (
        f"{cid!r} is the default client id of site {cid[4:]!r}, not of {config.site_id!r} "
        "(two sites with one client id take each other's MQTT session); leave it unset "
        f"(default vpp-{config.site_id}) or give this site an id of its own"
    )


def _device_kind(
    dc: DeviceConfig,
    profile: ModbusProfile | MqttProfile | None,
    where: str,
    errors: list[str],
) -> Kind | None:
    """The device's kind after checking its `type`, `driver` and `options` against the profile
    and the driver registry; None (with the errors appended) when the device cannot be built."""
    before = len(errors)
    if profile is not None:
        kind: Kind | None = profile.kind
        if dc.type != profile.kind.value:
            errors.append(f"{where}.type: {dc.type!r} does not match profile kind {profile.kind}")
    else:
        kind = Kind(dc.type) if dc.type in Kind.__members__ else None
        if kind is None:
            kinds = ", ".join(k.value for k in Kind)
            errors.append(f"{where}.type: {dc.type!r} is not a device kind ({kinds})")
        if dc.driver is None:
            errors.append(f"{where}.profile: a device needs a profile, or a driver that needs none")
        if dc.transport is not None:
            errors.append(f"{where}.transport: a device without a profile has no transport")
        if dc.limits:
            errors.append(f"{where}.limits: a device without a profile has no points to limit")
    name = dc.driver or (profile.transport if profile is not None else None)
    if name is not None:
        t = driver_type(name)
        if t is None:
            known = ", ".join(driver_types())
            errors.append(f"{where}.driver: no driver named {name!r} (known: {known})")
        else:
            errors.extend(f"{where}.{p}" for p in t.check(kind, profile, dc.options))
    return kind if len(errors) == before else None


def load_site(path: str | Path) -> Site:
    """Read and validate a site file."""
    path = Path(path)
    return parse_site(read_yaml(path, SiteError), path)
