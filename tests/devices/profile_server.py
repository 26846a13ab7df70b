"""A real pymodbus server serving one profile's register map (no physics) for driver tests.

Faults are injected the way a device shows them: `delay_s` answers late (on the test's clock),
`exception_code` answers every request with that Modbus exception, `write_exception_code`
every write, `stop()` kills it.
"""

from __future__ import annotations

import socket
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice
from pymodbus.simulator.simutils import DataType

from devices import codec
from devices.clock import Clock
from devices.profile import ModbusProfile, Table

_TABLE_INDEX = {Table.coil: 0, Table.discrete: 1, Table.holding: 2, Table.input: 3}
_BLOCK_ID = {Table.coil: "c", Table.discrete: "d", Table.holding: "h", Table.input: "i"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def initial_values(profile: ModbusProfile) -> dict[str, float]:
    """Each point's `default` or 0, in engineering units (scale factors as raw ints)."""
    return {n: (p.default if p.default is not None else 0.0) for n, p in profile.points.items()}


def sim_device(profile: ModbusProfile, values: dict[str, float], action: Any = None) -> SimDevice:
    """A pymodbus SimDevice with one entry per point; addresses between points stay invalid,
    but for gaps up to the profile's `max_read_gap` (zeros, as a device that answers them)."""
    blocks: tuple[list[SimData], ...] = ([], [], [], [])
    ends: dict[Table, int] = {}
    for name, p in sorted(profile.points.items(), key=lambda kv: kv[1].address):
        v = values[name]
        gap = p.address - ends.get(p.table, p.address)
        if 0 < gap <= profile.max_read_gap:
            bits = p.table in (Table.coil, Table.discrete)
            blocks[_TABLE_INDEX[p.table]].append(
                SimData(
                    ends[p.table],
                    values=[False] * gap if bits else [0] * gap,
                    datatype=DataType.BITS if bits else DataType.REGISTERS,
                )
            )
        ends[p.table] = p.address + p.count
        if p.table in (Table.coil, Table.discrete):
            blocks[_TABLE_INDEX[p.table]].append(
                SimData(p.address, values=[bool(v)], datatype=DataType.BITS)
            )
            continue
        sf = int(values[p.scale_factor]) if p.scale_factor else None
        regs = codec.encode(p, v, profile.word_order_of(p), sf)
        blocks[_TABLE_INDEX[p.table]].append(
            SimData(p.address, values=regs, datatype=DataType.REGISTERS)
        )
    for i, b in enumerate(blocks):
        if not b:  # pymodbus wants every table defined: one cell far from any profile point
            bits = i in (0, 1)
            b.append(
                SimData(
                    60000,
                    values=[False] if bits else [0],
                    datatype=DataType.BITS if bits else DataType.REGISTERS,
                )
            )
    return SimDevice(id=profile.unit_id, simdata=blocks, action=action)


class ProfileServer:
    """Serve `profile` on 127.0.0.1:`port` (a free one by default)."""

    def __init__(self, profile: ModbusProfile, clock: Clock, port: int | None = None) -> None:
        self.profile = profile
        self.clock = clock
        self.port = port or free_port()
        self.values = initial_values(profile)
        self.delay_s = 0.0
        self.exception_code: int | None = None
        self.write_exception_code: int | None = None
        self.requests = 0
        self.writes: list[tuple[int, int, list[Any]]] = []
        self._server: ModbusTcpServer | None = None

    async def _action(
        self,
        fc: int,
        start: int,
        address: int,
        count: int,
        regs: list[int],
        values: list[Any] | None,
    ) -> ExcCodes | None:
        self.requests += 1
        if self.delay_s:
            await self.clock.sleep(self.delay_s)
        if self.exception_code is not None:
            return ExcCodes(self.exception_code)
        if values is not None and self.write_exception_code is not None:
            return ExcCodes(self.write_exception_code)
        if values is not None:
            self.writes.append((fc, address, list(values)))
        return None

    async def start(self) -> ProfileServer:
        device = sim_device(self.profile, self.values, self._action)
        self._server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
        await self._server.serve_forever(background=True)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    def set(self, point: str, value: float) -> None:
        """Change a register point's value as the device would (engineering units)."""
        assert self._server is not None
        p = self.profile.points[point]
        sf = int(self.values[p.scale_factor]) if p.scale_factor else None
        regs = codec.encode(p, value, self.profile.word_order_of(p), sf)
        start, _, registers, _ = self._runtime().block[_BLOCK_ID[p.table]]
        registers[p.address - start : p.address - start + p.count] = regs
        self.values[point] = value

    def get(self, point: str) -> float:
        """The register point's current value in engineering units."""
        p = self.profile.points[point]
        sf = int(self.values[p.scale_factor]) if p.scale_factor else None
        start, _, registers, _ = self._runtime().block[_BLOCK_ID[p.table]]
        regs = registers[p.address - start : p.address - start + p.count]
        return codec.decode(p, regs, self.profile.word_order_of(p), sf)

    def _runtime(self) -> Any:
        assert self._server is not None
        return self._server.context.devices[self.profile.unit_id]  # type: ignore[union-attr]
