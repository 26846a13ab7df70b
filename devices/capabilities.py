"""Capabilities, not brands: small protocols, typed telemetry and limits per device kind.

Telemetry is built from a `Reading` of canonical point names (units in the names,
consumption positive: +kW is drawn from the grid, so a discharging battery or producing PV
reads negative). Limits come from the site file; `point_limits()` turns them into the
per-point bounds every driver clamps setpoints to. Commands go through the capability
adapters (`Battery`, `EvCharger`, ...), which write canonical points on any driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from devices.driver import Driver, Reading, WriteResult
from devices.profile import Kind

# -- what a device can do -----------------------------------------------------------------


@runtime_checkable
class ReadsPower(Protocol):
    """Telemetry with the device's power, kW, consumption positive."""

    power_kw: float


@runtime_checkable
class ReadsSoc(Protocol):
    """Telemetry with a state of charge, % of usable capacity."""

    soc_pct: float


@runtime_checkable
class TakesPowerSetpoint(Protocol):
    """Follows a signed power setpoint, kW, consumption positive (+ charge, - discharge)."""

    async def set_power_kw(self, power_kw: float) -> WriteResult: ...


@runtime_checkable
class TakesPowerLimit(Protocol):
    """Caps its consumption at a limit, kW ≥ 0."""

    async def limit_power_kw(self, limit_kw: float) -> WriteResult: ...


@runtime_checkable
class TakesZoneSetpoint(Protocol):
    """Holds a zone temperature setpoint, °C."""

    async def set_zone_c(self, setpoint_c: float) -> WriteResult: ...


@runtime_checkable
class Sheddable(Protocol):
    """Can be switched off (shed) and back on."""

    async def shed(self, on: bool) -> WriteResult: ...


# -- telemetry ----------------------------------------------------------------------------


class TelemetryError(ValueError):
    """A reading lacks a point the telemetry of its kind needs."""


def _need(r: Reading, name: str) -> float:
    try:
        return float(r.values[name])
    except KeyError:
        raise TelemetryError(f"{r.device_id}: reading has no point {name}") from None


def _opt(r: Reading, name: str) -> float | None:
    v = r.values.get(name)
    return None if v is None else float(v)


@dataclass(frozen=True)
class BatteryTelemetry:
    """Battery: power kW (+ charging, - discharging), SoC %, present rate limits kW ≥ 0."""

    power_kw: float
    soc_pct: float
    max_charge_kw: float
    max_discharge_kw: float
    power_setpoint_kw: float
    capacity_kwh: float | None = None
    soc_reserve_pct: float | None = None

    @classmethod
    def from_reading(cls, r: Reading) -> BatteryTelemetry:
        return cls(
            power_kw=_need(r, "power_kw"),
            soc_pct=_need(r, "soc_pct"),
            max_charge_kw=_need(r, "max_charge_kw"),
            max_discharge_kw=_need(r, "max_discharge_kw"),
            power_setpoint_kw=_need(r, "power_setpoint_kw"),
            capacity_kwh=_opt(r, "capacity_kwh"),
            soc_reserve_pct=_opt(r, "soc_reserve_pct"),
        )


@dataclass(frozen=True)
class EvChargerTelemetry:
    """EV charger: power kW ≥ 0, car plugged, IEC-style state, session energy kWh, limit kW."""

    power_kw: float
    plugged: bool
    state: int
    session_energy_kwh: float
    power_limit_kw: float
    phases: int
    max_power_kw: float | None = None

    @classmethod
    def from_reading(cls, r: Reading) -> EvChargerTelemetry:
        return cls(
            power_kw=_need(r, "power_kw"),
            plugged=bool(_need(r, "plugged")),
            state=int(_need(r, "state")),
            session_energy_kwh=_need(r, "session_energy_kwh"),
            power_limit_kw=_need(r, "power_limit_kw"),
            phases=int(_need(r, "phases")),
            max_power_kw=_opt(r, "max_power_kw"),
        )


@dataclass(frozen=True)
class ThermalZoneTelemetry:
    """HVAC zone: electric power kW ≥ 0, zone temperature and setpoint °C, mode, on/off."""

    power_kw: float
    zone_temp_c: float
    setpoint_c: float
    mode: int
    on: bool
    power_limit_kw: float
    outdoor_temp_c: float | None = None

    @classmethod
    def from_reading(cls, r: Reading) -> ThermalZoneTelemetry:
        return cls(
            power_kw=_need(r, "power_kw"),
            zone_temp_c=_need(r, "zone_temp_c"),
            setpoint_c=_need(r, "setpoint_c"),
            mode=int(_need(r, "mode")),
            on=bool(_need(r, "on_off")),
            power_limit_kw=_need(r, "power_limit_kw"),
            outdoor_temp_c=_opt(r, "outdoor_temp_c"),
        )


@dataclass(frozen=True)
class MeterTelemetry:
    """Site meter: net import kW (+ import, - export), energy counters kWh."""

    import_power_kw: float
    import_energy_kwh: float
    export_energy_kwh: float

    @property
    def power_kw(self) -> float:
        """The same net import, under the common name (consumption positive)."""
        return self.import_power_kw

    @classmethod
    def from_reading(cls, r: Reading) -> MeterTelemetry:
        return cls(
            import_power_kw=_need(r, "import_power_kw"),
            import_energy_kwh=_need(r, "import_energy_kwh"),
            export_energy_kwh=_need(r, "export_energy_kwh"),
        )


@dataclass(frozen=True)
class PvTelemetry:
    """PV inverter: power kW, consumption positive (so ≤ 0 when producing), limit %."""

    power_kw: float
    limit_pct: float
    rated_kw: float | None = None

    @classmethod
    def from_reading(cls, r: Reading) -> PvTelemetry:
        return cls(
            power_kw=_need(r, "power_kw"),
            limit_pct=_need(r, "limit_pct"),
            rated_kw=_opt(r, "rated_kw"),
        )


@dataclass(frozen=True)
class CurtailableLoadTelemetry:
    """A load that can be shed: power kW ≥ 0, shed on/off."""

    power_kw: float
    shed: bool

    @classmethod
    def from_reading(cls, r: Reading) -> CurtailableLoadTelemetry:
        return cls(power_kw=_need(r, "power_kw"), shed=bool(_need(r, "shed")))


Telemetry = (
    BatteryTelemetry
    | EvChargerTelemetry
    | ThermalZoneTelemetry
    | MeterTelemetry
    | PvTelemetry
    | CurtailableLoadTelemetry
)

TELEMETRY: Mapping[Kind, type[Telemetry]] = {
    Kind.battery: BatteryTelemetry,
    Kind.ev_charger: EvChargerTelemetry,
    Kind.hvac: ThermalZoneTelemetry,
    Kind.meter: MeterTelemetry,
    Kind.pv: PvTelemetry,
    Kind.curtailable_load: CurtailableLoadTelemetry,
}


def telemetry(kind: Kind, reading: Reading) -> Telemetry:
    """The typed telemetry of a device kind from one reading; TelemetryError if incomplete."""
    return TELEMETRY[kind].from_reading(reading)


# -- limits from the site file -------------------------------------------------------------


def _check(owner: str, **values: float) -> None:
    for name, v in values.items():
        if v < 0:
            raise ValueError(f"{owner}.{name} must be ≥ 0, got {v}")


@dataclass(frozen=True)
class BatteryLimits:
    """Battery limits: charge/discharge kW ≥ 0, reserve SoC % kept for backup."""

    max_charge_kw: float
    max_discharge_kw: float
    soc_reserve_pct: float = 0.0

    def __post_init__(self) -> None:
        _check("battery", max_charge_kw=self.max_charge_kw, max_discharge_kw=self.max_discharge_kw)
        if not 0 <= self.soc_reserve_pct <= 100:
            raise ValueError(f"battery.soc_reserve_pct must be 0..100, got {self.soc_reserve_pct}")

    def point_limits(self) -> dict[str, tuple[float, float]]:
        return {
            "power_setpoint_kw": (-self.max_discharge_kw, self.max_charge_kw),
            "soc_reserve_pct": (self.soc_reserve_pct, 100.0),
        }


@dataclass(frozen=True)
class EvChargerLimits:
    """EV charger limits: the most it may draw, kW ≥ 0 (the circuit's rating)."""

    max_power_kw: float

    def __post_init__(self) -> None:
        _check("ev_charger", max_power_kw=self.max_power_kw)

    def point_limits(self) -> dict[str, tuple[float, float]]:
        return {"power_limit_kw": (0.0, self.max_power_kw)}


@dataclass(frozen=True)
class ThermalZoneLimits:
    """HVAC zone limits: the setpoint band °C the building allows, and max power kW."""

    min_setpoint_c: float
    max_setpoint_c: float
    max_power_kw: float | None = None

    def __post_init__(self) -> None:
        if self.min_setpoint_c > self.max_setpoint_c:
            raise ValueError("hvac.min_setpoint_c is above hvac.max_setpoint_c")

    def point_limits(self) -> dict[str, tuple[float, float]]:
        out = {"setpoint_c": (self.min_setpoint_c, self.max_setpoint_c)}
        if self.max_power_kw is not None:
            out["power_limit_kw"] = (0.0, self.max_power_kw)
        return out


@dataclass(frozen=True)
class PvLimits:
    """PV limits: the lowest output limit % the operator allows (0 lets it curtail fully)."""

    min_limit_pct: float = 0.0

    def point_limits(self) -> dict[str, tuple[float, float]]:
        return {"limit_pct": (self.min_limit_pct, 100.0)}


@dataclass(frozen=True)
class CurtailableLoadLimits:
    """A curtailable load's nominal power kW (what shedding it saves)."""

    nominal_kw: float

    def point_limits(self) -> dict[str, tuple[float, float]]:
        return {}


# -- command adapters ----------------------------------------------------------------------


class _Adapter:
    def __init__(self, driver: Driver) -> None:
        self.driver = driver


class Battery(_Adapter):
    """A battery's commands: signed power setpoint (puts it in remote mode first).

    The modes are the profile's `control_mode` values `remote` / `local` (SunSpec's 1 / 0
    when the profile names none).
    """

    def _mode(self, name: str, default: int) -> float:
        p = self.driver.profile
        point = p.points.get("control_mode") if p is not None else None
        if p is None or point is None or point.values is None:
            return default
        return p.enum_value("control_mode", name)

    async def set_power_kw(self, power_kw: float) -> WriteResult:
        await self.driver.write("control_mode", self._mode("remote", 1))
        return await self.driver.write("power_setpoint_kw", power_kw)

    async def release(self) -> WriteResult:
        """Hand control back to the device (local mode)."""
        return await self.driver.write("control_mode", self._mode("local", 0))


class EvCharger(_Adapter):
    """An EV charger's commands: a power limit, kW (0 pauses charging)."""

    async def limit_power_kw(self, limit_kw: float) -> WriteResult:
        return await self.driver.write("power_limit_kw", limit_kw)


class ThermalZone(_Adapter):
    """An HVAC zone's commands: a setpoint °C and an electric power cap kW."""

    async def set_zone_c(self, setpoint_c: float) -> WriteResult:
        return await self.driver.write("setpoint_c", setpoint_c)

    async def limit_power_kw(self, limit_kw: float) -> WriteResult:
        return await self.driver.write("power_limit_kw", limit_kw)


class CurtailableLoad(_Adapter):
    """A load's command: shed (True) or restore (False)."""

    async def shed(self, on: bool) -> WriteResult:
        return await self.driver.write("shed", 1.0 if on else 0.0)


class Pv(_Adapter):
    """A PV inverter's command: an output limit, % of rating."""

    async def limit_pct(self, pct: float) -> WriteResult:
        return await self.driver.write("limit_pct", pct)


class WatchdogRefresh(_Adapter):
    """Re-assert the device's fail-safe watchdog, seconds (any kind with `watchdog_s`)."""

    async def set_watchdog_s(self, seconds: float) -> WriteResult:
        return await self.driver.write("watchdog_s", seconds)
