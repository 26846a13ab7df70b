"""The generic Modbus TCP driver: runs any ModbusProfile (register map) over pymodbus.

Reads go in as few requests as the map allows (contiguous points, ≤125 registers each, via
`devices.codec.plan_reads`); writes are clamped to the profile's and the site's limits, then
read back when the profile says `verify: true`. Timeouts run on the injected clock, so a slow
device costs simulated seconds under the VirtualClock; pymodbus's own (wall-time) timeout is
only a backstop and its retries are off: the Poller retries with backoff on the clock.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from devices import codec
from devices.clock import Clock, WallClock, timeout
from devices.driver import (
    DeviceError,
    PointError,
    PointLimits,
    Reading,
    WriteResult,
    clamp_setpoint,
)
from devices.health import Health, HealthState
from devices.profile import Kind, ModbusPoint, ModbusProfile, PointType, Table

log = structlog.get_logger("devices.modbus")
T = TypeVar("T")

_BACKSTOP_MIN_S = 30.0


async def _within(clock: Clock, seconds: float, aw: Awaitable[T]) -> T:
    """`devices.clock.timeout`, with a fast path on the WallClock.

    On wall time, asyncio's own deadline is the same rule and costs no extra tasks (the
    generic path spawns two per call, which is most of a poll's CPU at thousands of devices).
    """
    if type(clock) is WallClock:
        async with asyncio.timeout(seconds):
            return await aw
    return await timeout(clock, seconds, aw)


class ModbusDriver:
    """One Modbus TCP device running `profile` at host:port, unit id `unit_id`.

    `timeout_s` bounds one whole read (all its requests) or one write, in clock seconds.
    `limits` are the site's per-point (min, max) bounds, applied on top of the profile's.
    """

    def __init__(
        self,
        device_id: str,
        profile: ModbusProfile,
        *,
        host: str,
        port: int,
        clock: Clock,
        unit_id: int | None = None,
        timeout_s: float = 1.0,
        limits: PointLimits | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"{device_id}: timeout_s must be positive, got {timeout_s}")
        for name, (lo, hi) in (limits or {}).items():
            if name not in profile.points:
                raise PointError(f"{device_id}: limits.{name}: the profile has no such point")
            if lo > hi:
                raise PointError(f"{device_id}: limits.{name}: min {lo} is above max {hi}")
        self._id = device_id
        self._profile = profile
        self._host, self._port = host, port
        self._clock = clock
        self._unit = profile.unit_id if unit_id is None else unit_id
        self._timeout_s = timeout_s
        self._limits: PointLimits = dict(limits or {})
        self._blocks = codec.plan_reads(profile)
        self._client: AsyncModbusTcpClient | None = None
        self._lock = asyncio.Lock()
        self._sf: dict[str, int] = {}
        self._sf_names = {p.scale_factor for p in profile.points.values() if p.scale_factor}
        self._health = Health.starting(clock.now())

    # -- Driver protocol -------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def kind(self) -> Kind:
        return self._profile.kind

    @property
    def profile(self) -> ModbusProfile:
        return self._profile

    @property
    def health(self) -> Health:
        return self._health

    @property
    def address(self) -> str:
        """host:port/unit, for logs."""
        return f"{self._host}:{self._port}/{self._unit}"

    async def start(self) -> None:
        """Try to connect once; a device that is down is left to read() to report."""
        try:
            async with self._lock:
                await self._connect()
        except DeviceError:
            pass

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def read(self) -> Reading:
        """Read every point of the profile in planned blocks, decoded to engineering units."""
        async with self._lock:
            raw = await self._guard("read", self._read_blocks())
        # raw × 0.1 gives 23.400000000000002: drop the binary noise below 1e-9 of a unit.
        values = {k: round(v, 9) for k, v in codec.engineering(self._profile, raw).items()}
        for name in self._sf_names:
            if name in raw:
                self._sf[name] = int(raw[name])
        self._set_health(Health.online(self._clock.now()))
        return Reading(self._id, self._clock.now(), self._clock.monotonic(), values)

    async def write(self, point: str, value: float) -> WriteResult:
        """Clamp, write and (if the profile says `verify`) read back one point."""
        p = self._writable(point)
        if p.type is PointType.bool:
            written, clamped = (1.0 if value else 0.0), False
        else:
            written, clamped = clamp_setpoint(
                self._id, point, float(value), (p.min, p.max), self._limits
            )
        async with self._lock:
            sf = await self._scale_factor(p)
            try:
                words = codec.encode(p, written, self._profile.word_order_of(p), sf)
            except codec.CodecError as e:
                raise PointError(f"{self._id}.{point}: {e}") from e
            await self._guard("write", self._write_words(p, words))
            verified: bool | None = None
            if p.verify:
                got = await self._guard("verify", self._read_point(point, p, sf))
                step = abs(codec.scale_of(p, sf)) if p.type is not PointType.f32 else 0.0
                verified = math.isclose(got, written, abs_tol=step / 2 + 1e-9)
                if not verified:
                    log.warning(
                        "setpoint_not_verified",
                        device_id=self._id,
                        point=point,
                        written=written,
                        read_back=got,
                    )
        return WriteResult(point, float(value), written, clamped, verified)

    # -- internals -----------------------------------------------------------------------

    def _writable(self, point: str) -> ModbusPoint:
        p = self._profile.points.get(point)
        if p is None:
            raise PointError(f"{self._id}: the profile {self._profile.name} has no point {point}")
        if p.access != "rw":
            raise PointError(f"{self._id}.{point} is read-only")
        return p

    def _set_health(self, h: Health) -> None:
        if h.state is not self._health.state or h.reason != self._health.reason:
            self._health = h

    async def _connect(self) -> AsyncModbusTcpClient:
        client = self._client
        if client is not None and client.connected:
            return client
        if client is not None:
            client.close()
        # reconnect_delay=0: no background reconnects; we reconnect on the next read.
        client = AsyncModbusTcpClient(
            self._host,
            port=self._port,
            timeout=max(_BACKSTOP_MIN_S, 10 * self._timeout_s),
            retries=0,
            reconnect_delay=0,
            name=self._id,
        )
        self._client = client
        try:
            ok = await _within(self._clock, self._timeout_s, client.connect())
        except TimeoutError as e:
            client.close()
            self._client = None
            raise DeviceError(
                f"no connection within {self._timeout_s:g} s", connection_lost=True
            ) from e
        if not ok:
            client.close()
            self._client = None
            raise DeviceError(f"cannot connect to {self.address}", connection_lost=True)
        return client

    async def _guard(self, what: str, aw: Awaitable[Any]) -> Any:
        """Run one transaction on the clock's timeout; map every failure to DeviceError."""
        try:
            return await _within(self._clock, self._timeout_s, aw)
        except TimeoutError as e:
            # A late answer would arrive out of turn: drop the connection, reconnect later.
            await self.close()
            err = DeviceError(f"{what}: no answer within {self._timeout_s:g} s")
            self._fail(err)
            raise err from e
        except DeviceError as e:
            if e.connection_lost:
                await self.close()
            self._fail(e)
            raise
        except (ModbusException, OSError) as e:
            await self.close()
            err = DeviceError(f"{what}: {e}", connection_lost=True)
            self._fail(err)
            raise err from e

    def _fail(self, e: DeviceError) -> None:
        state = HealthState.offline if e.connection_lost else HealthState.degraded
        self._set_health(Health(state, e.reason, self._clock.now(), e.exception_code))

    async def _request(
        self, call: Callable[..., Awaitable[Any]], what: str, *args: Any, **kw: Any
    ) -> Any:
        rr = await call(*args, device_id=self._unit, **kw)
        if rr.isError():
            code = getattr(rr, "exception_code", None)
            raise DeviceError(f"exception code {code} on {what}", exception_code=code)
        return rr

    async def _read_table(self, table: Table, address: int, count: int) -> list[int]:
        c = await self._connect()
        what = f"reading {table} {address}+{count}"
        if table is Table.holding:
            rr = await self._request(c.read_holding_registers, what, address, count=count)
        elif table is Table.input:
            rr = await self._request(c.read_input_registers, what, address, count=count)
        elif table is Table.coil:
            rr = await self._request(c.read_coils, what, address, count=count)
            return [int(b) for b in rr.bits[:count]]
        else:
            rr = await self._request(c.read_discrete_inputs, what, address, count=count)
            return [int(b) for b in rr.bits[:count]]
        regs: list[int] = rr.registers
        if len(regs) != count:
            raise DeviceError(f"{what}: got {len(regs)} registers")
        return regs

    async def _read_blocks(self) -> dict[str, int | float]:
        raw: dict[str, int | float] = {}
        for b in self._blocks:
            regs = await self._read_table(b.table, b.address, b.count)
            raw.update(codec.block_raw(self._profile, b, regs))
        return raw

    async def _read_point(self, name: str, p: ModbusPoint, sf: int | None) -> float:
        regs = await self._read_table(p.table, p.address, p.count)
        return codec.decode(p, regs, self._profile.word_order_of(p), sf)

    async def _scale_factor(self, p: ModbusPoint) -> int | None:
        if p.scale_factor is None:
            return None
        if p.scale_factor not in self._sf:
            sfp = self._profile.points[p.scale_factor]
            regs = await self._guard("read", self._read_table(sfp.table, sfp.address, 1))
            self._sf[p.scale_factor] = int(codec.registers_to_raw(regs, PointType.s16, "big"))
        return self._sf[p.scale_factor]

    async def _write_words(self, p: ModbusPoint, words: list[int]) -> None:
        c = await self._connect()
        what = f"writing {p.table} {p.address}"
        if p.table is Table.coil:
            await self._request(c.write_coil, what, p.address, bool(words[0]))
        else:
            await self._request(c.write_registers, what, p.address, words)
