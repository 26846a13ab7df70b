"""Device profiles: validated register maps (Modbus) and topic maps (MQTT).

One profile file serves both sides: the simulator serves it, the driver reads it. Point
names are the canonical names of the device kind (see `REQUIRED_POINTS`), with units in
the name and consumption positive; vendor or SunSpec names go in `label`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class Kind(StrEnum):
    """Device kinds the agent understands (capabilities, not brands)."""

    battery = "battery"
    ev_charger = "ev_charger"
    hvac = "hvac"
    meter = "meter"
    pv = "pv"
    curtailable_load = "curtailable_load"
    ev_charger_v2g = "ev_charger_v2g"


class Table(StrEnum):
    holding = "holding"
    input = "input"
    coil = "coil"
    discrete = "discrete"


class PointType(StrEnum):
    u16 = "u16"
    s16 = "s16"
    u32 = "u32"
    s32 = "s32"
    f32 = "f32"
    bool = "bool"


REGISTER_COUNT = {
    PointType.u16: 1,
    PointType.s16: 1,
    PointType.u32: 2,
    PointType.s32: 2,
    PointType.f32: 2,
    PointType.bool: 1,
}

# Points each kind must expose, by canonical name; the simulators and capability adapters rely
# on them. Other points are allowed and read as extra telemetry.
REQUIRED_POINTS: dict[Kind, frozenset[str]] = {
    Kind.battery: frozenset(
        {
            "soc_pct",
            "power_kw",
            "max_charge_kw",
            "max_discharge_kw",
            "power_setpoint_kw",
            "control_mode",
            "watchdog_s",
        }
    ),
    Kind.ev_charger: frozenset(
        {
            "state",
            "plugged",
            "power_limit_kw",
            "power_kw",
            "session_energy_kwh",
            "phases",
            "watchdog_s",
        }
    ),
    Kind.hvac: frozenset(
        {"zone_temp_c", "setpoint_c", "mode", "power_kw", "power_limit_kw", "on_off", "watchdog_s"}
    ),
    Kind.meter: frozenset({"import_power_kw", "import_energy_kwh", "export_energy_kwh"}),
    Kind.pv: frozenset({"power_kw", "limit_pct"}),
    Kind.curtailable_load: frozenset({"power_kw", "shed", "watchdog_s"}),
    Kind.ev_charger_v2g: frozenset(
        {
            "plugged",
            "power_kw",
            "session_net_energy_kwh",
            "vehicle_soc_pct",
            "vehicle_capacity_kwh",
            "departure_soc_pct",
            "max_charge_kw",
            "max_discharge_kw",
            "power_setpoint_kw",
            "watchdog_s",
        }
    ),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnumError(ValueError):
    """A point without an enumeration, or a name (value) it does not have; names the profile,
    the point and the names it knows."""


# Raw ranges of the integer register types (bool: 0/1); f32 takes any finite number.
_RAW_RANGE: dict[str, tuple[int, int]] = {
    "u16": (0, 0xFFFF),
    "s16": (-0x8000, 0x7FFF),
    "u32": (0, 0xFFFFFFFF),
    "s32": (-0x80000000, 0x7FFFFFFF),
    "bool": (0, 1),
}

EnumValues = dict[str, int | float]
"""A point's value map: name → raw value (`values: {remote: 1, local: 0}`)."""


def _check_values(values: EnumValues, type_: str, lo: float | None, hi: float | None) -> None:
    """Unique values that fit the point's type and its min/max (so a write by name is never
    clamped into another value)."""
    seen: dict[float, str] = {}
    for name, v in values.items():
        if not math.isfinite(v):
            raise ValueError(f"values.{name}: {v} is not a finite number")
        if type_ != "f32" and type_ != "float" and v != int(v):
            raise ValueError(f"values.{name}: {v} is not an integer ({type_})")
        rng = _RAW_RANGE.get(type_)
        if rng is not None and not rng[0] <= v <= rng[1]:
            raise ValueError(f"values.{name}: {v:g} does not fit {type_} ({rng[0]}..{rng[1]})")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ValueError(f"values.{name}: {v:g} is outside the point's min..max ({lo}..{hi})")
        if v in seen:
            raise ValueError(f"values.{name}: {v:g} is also values.{seen[v]}")
        seen[v] = name


class ModbusPoint(_Strict):
    """One value in a Modbus register map.

    Engineering value = raw × scale × 10^sf, where sf is the value of `scale_factor` (a
    SunSpec-style int16 register named by point) when given.
    """

    table: Table
    address: Annotated[int, Field(ge=0, le=65535)]
    type: PointType = PointType.u16
    word_order: Literal["big", "little"] | None = None
    scale: float = 1.0
    scale_factor: str | None = None
    unit: str = ""
    access: Literal["r", "rw"] = "r"
    min: float | None = None
    max: float | None = None
    verify: bool = False
    default: float | None = None
    values: EnumValues | None = None
    label: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ModbusPoint:
        bit_table = self.table in (Table.coil, Table.discrete)
        if bit_table != (self.type is PointType.bool):
            raise ValueError("coil and discrete points have type bool, registers do not")
        if self.access == "rw" and self.table in (Table.input, Table.discrete):
            raise ValueError(f"a {self.table} point cannot be written (access must be r)")
        if self.access == "rw" and self.type is not PointType.bool:
            if self.min is None or self.max is None:
                raise ValueError("a writable point needs min and max")
            if self.min > self.max:
                raise ValueError("min is above max")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.values is not None:
            # Raw = engineering only without scaling: a name then means one register value.
            if self.scale != 1 or self.scale_factor is not None:
                raise ValueError("a point with values has scale 1 and no scale_factor")
            _check_values(self.values, self.type.value, self.min, self.max)
        return self

    @property
    def count(self) -> int:
        """Registers (or bits) this point occupies."""
        return REGISTER_COUNT[self.type]


class MqttPoint(_Strict):
    """One value in an MQTT device's JSON telemetry (and command, when writable)."""

    field: str
    unit: str = ""
    access: Literal["r", "rw"] = "r"
    type: Literal["float", "int", "bool"] = "float"
    min: float | None = None
    max: float | None = None
    default: float | None = None
    values: EnumValues | None = None
    label: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _check(self) -> MqttPoint:
        if self.access == "rw" and self.type != "bool" and (self.min is None or self.max is None):
            raise ValueError("a writable point needs min and max")
        if self.values is not None:
            _check_values(self.values, self.type, self.min, self.max)
        return self


class MqttTopics(_Strict):
    """Topic templates; `{site}` and `{device}` are filled in from the site file.

    `state` is the device's availability topic: a retained JSON object whose
    `availability_field` (profile, default `online`) is true while it is up, and false in
    its last will and when it goes offline on purpose.
    """

    telemetry: str = "vpp/{site}/{device}/telemetry"
    command: str = "vpp/{site}/{device}/cmd"
    state: str = "vpp/{site}/{device}/state"


class _ProfileBase(_Strict):
    name: str
    kind: Kind
    description: str = ""
    vendor: str | None = None

    def _check_required(self, points: dict[str, Any]) -> None:
        missing = sorted(REQUIRED_POINTS[self.kind] - points.keys())
        if missing:
            raise ValueError(f"a {self.kind} profile needs the points {', '.join(missing)}")

    def _values_of(self, point: str) -> Mapping[str, int | float] | None:
        raise NotImplementedError

    def _enum(self, point: str) -> Mapping[str, int | float]:
        values = self._values_of(point)
        if values is None:
            raise EnumError(f"profile {self.name}: point {point} has no values (enumeration)")
        return values

    def enum_value(self, point: str, name: str) -> float:
        """The raw value `name` stands for in `point`'s `values` (an int for integer points,
        so `control_mode` "remote" is 1, not 1.0); EnumError if the point or name has none."""
        values = self._enum(point)
        if name not in values:
            known = ", ".join(sorted(values))
            raise EnumError(f"profile {self.name}: {point} has no value {name!r} (known: {known})")
        return values[name]

    def enum_name(self, point: str, value: float) -> str:
        """The name of `value` in `point`'s `values`; EnumError when no name has that value."""
        for name, v in self._enum(point).items():
            if v == value:
                return name
        raise EnumError(f"profile {self.name}: {point} = {value:g} has no name in its values")


class ModbusProfile(_ProfileBase):
    """A register map run by the generic Modbus driver and served by the simulator."""

    transport: Literal["modbus"] = "modbus"
    unit_id: Annotated[int, Field(ge=0, le=255)] = 1
    word_order: Literal["big", "little"] = "big"
    # How many unmapped addresses one read may span (the device must answer them: many do,
    # some refuse); 0: points apart take a request each.
    max_read_gap: int = Field(
        default=0,
        ge=0,
        le=123,
        description="the longest run of unmapped registers (or bits) one read may span: the"
        " device answers them; 0: never read an unmapped address",
    )
    points: dict[str, ModbusPoint]

    @model_validator(mode="after")
    def _check(self) -> ModbusProfile:
        self._check_required(self.points)
        for name, p in self.points.items():
            if p.scale_factor is not None:
                sf = self.points.get(p.scale_factor)
                if sf is None:
                    raise ValueError(f"points.{name}.scale_factor names no point")
                if sf.type is not PointType.s16:
                    raise ValueError(f"points.{name}.scale_factor must name an s16 point")
        self._check_overlaps()
        return self

    def _check_overlaps(self) -> None:
        taken: dict[tuple[Table, int], str] = {}
        for name, p in self.points.items():
            for a in range(p.address, p.address + p.count):
                other = taken.get((p.table, a))
                if other is not None:
                    raise ValueError(f"points.{name} overlaps points.{other} at {p.table} {a}")
                taken[(p.table, a)] = name

    def word_order_of(self, point: ModbusPoint) -> Literal["big", "little"]:
        return point.word_order or self.word_order

    def _values_of(self, point: str) -> Mapping[str, int | float] | None:
        p = self.points.get(point)
        if p is None:
            raise EnumError(f"profile {self.name} has no point {point}")
        return p.values


class MqttProfile(_ProfileBase):
    """An MQTT device: JSON telemetry on a topic, commands as JSON on another.

    `availability_field`: the field of the state topic's JSON object that says whether the
    device is up. `telemetry_period_s`: how often the device publishes telemetry (None: the
    driver learns it from the messages); the device is stale after a few such periods.
    """

    transport: Literal["mqtt"] = "mqtt"
    topics: MqttTopics = MqttTopics()
    availability_field: str = "online"
    telemetry_period_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    points: dict[str, MqttPoint]

    @model_validator(mode="after")
    def _check(self) -> MqttProfile:
        self._check_required(self.points)
        return self

    def _values_of(self, point: str) -> Mapping[str, int | float] | None:
        p = self.points.get(point)
        if p is None:
            raise EnumError(f"profile {self.name} has no point {point}")
        return p.values


Profile = Annotated[ModbusProfile | MqttProfile, Field(discriminator="transport")]


class ProfileError(ValueError):
    """A profile file that cannot be used; the message names the file and the field path."""


def format_validation_error(source: str, err: ValidationError) -> str:
    """One line per error: `source: a.b[3].c: message`."""
    return "\n".join(f"{source}: {loc or '(top)'}: {msg}" for loc, msg in error_paths(err))


def error_paths(err: ValidationError) -> list[tuple[str, str]]:
    """(field path, message) of each error: `devices[3].port`, "Input should be ..."."""
    out = []
    for e in err.errors():
        loc = ""
        for part in e["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        out.append((loc, e["msg"]))
    return out


class _ProfileDoc(BaseModel):
    profile: Profile


class _Loader(yaml.SafeLoader):
    """Safe YAML in which an impossible timestamp (`start: 2026-07-32`) stays a string: the
    model's validation then names the field, where PyYAML raises a bare ValueError."""


def _timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def read_yaml(path: Path, error: type[ValueError]) -> Any:
    """The parsed YAML of a config file; `error` (naming the file, one line) if unreadable
    or invalid."""
    try:
        return yaml.load(path.read_text(), Loader=_Loader)  # a SafeLoader subclass
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise error(f"{path}: not valid YAML: {_yaml_problem(e)}") from e


def _yaml_problem(e: yaml.YAMLError) -> str:
    """PyYAML's message on one line: the problem and where (line, column)."""
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        m = e.problem_mark
        what = ": ".join(x for x in (e.context, e.problem) if x)
        return f"{what} (line {m.line + 1}, column {m.column + 1})"
    return " ".join(str(e).split())


def load_profile(path: str | Path) -> ModbusProfile | MqttProfile:
    """Read and validate one profile file; raise ProfileError naming the file and field."""
    path = Path(path)
    raw = read_yaml(path, ProfileError)
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: (top): a profile is a mapping")
    return parse_profile(raw, str(path))


def parse_profile(raw: dict[str, Any], source: str = "<profile>") -> ModbusProfile | MqttProfile:
    """Validate a profile given as data (a profile without `transport` is Modbus)."""
    raw = {"transport": "modbus", **raw}
    path = source
    try:
        return _ProfileDoc.model_validate({"profile": raw}).profile
    except ValidationError as e:
        msg = format_validation_error(str(path), e).replace(f"{path}: profile.", f"{path}: ")
        # Drop the discriminator tag pydantic puts in the path (profile.modbus.points...).
        msg = msg.replace(": modbus.", ": ").replace(": mqtt.", ": ")
        raise ProfileError(msg) from e


def config_dir() -> Path:
    """The bundled config folder (profiles, sites, scenarios): `config/` beside the packages
    in a checkout or an editable install, else where an installed package's data files went
    (`<prefix>/share/vpp/config`, pyproject.toml's `data-files`)."""
    beside = Path(__file__).resolve().parent.parent / "config"
    if beside.is_dir():
        return beside
    return Path(sys.prefix) / "share" / "vpp" / "config"


def profile_dir() -> Path:
    """The bundled profiles folder."""
    return config_dir() / "profiles"
