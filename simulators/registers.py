"""A device's Modbus register image, built from its profile and its physics on each request.

Requests touching an address no point defines, or writing a read-only point, get exception
02 (illegal data address); writes outside a point's min/max get 03 (illegal data value).
A profile's `max_read_gap` makes the unmapped addresses of gaps up to that long between two
points readable (as 0), as a device that allows reads across them does.
"""

from __future__ import annotations

import itertools
import math

from pymodbus.constants import ExcCodes

from devices.codec import CodecError, decode, encode, raw_to_registers
from devices.profile import ModbusPoint, ModbusProfile, PointType, Table
from simulators.device import ServedDevice

TABLE_OF_FC = {1: Table.coil, 5: Table.coil, 15: Table.coil, 2: Table.discrete}
TABLE_OF_FC.update({3: Table.holding, 6: Table.holding, 16: Table.holding, 23: Table.holding})
TABLE_OF_FC[4] = Table.input

_LIMITS = {
    PointType.u16: (0, 0xFFFF),
    PointType.s16: (-0x8000, 0x7FFF),
    PointType.u32: (0, 0xFFFFFFFF),
    PointType.s32: (-0x80000000, 0x7FFFFFFF),
}


_MAX_LAYOUTS = 256
_Layout = tuple[tuple[str, ...], list[tuple[str | None, int]]]


class RegisterStore:
    """Encodes a device's values per its ModbusProfile and decodes writes into commands."""

    def __init__(self, profile: ModbusProfile, device: ServedDevice) -> None:
        self.profile = profile
        self.device = device
        # (table, address) -> (point name, register offset inside the point)
        self.index: dict[tuple[Table, int], tuple[str, int]] = {}
        for name, p in profile.points.items():
            for off in range(p.count):
                self.index[(p.table, p.address + off)] = (name, off)
        self.gaps = _gaps(self.index, profile.max_read_gap)
        # Reads repeat (the same blocks every poll): each request's layout is worked out once.
        self._layouts: dict[tuple[Table, int, int], _Layout | ExcCodes] = {}

    def _values(self) -> dict[str, float]:
        values = self.device.values()
        for name, p in self.profile.points.items():
            if name not in values:
                values[name] = p.default if p.default is not None else 0.0
        return values

    def _sf(self, point: ModbusPoint, values: dict[str, float]) -> int | None:
        return int(values[point.scale_factor]) if point.scale_factor else None

    def _encode(self, name: str, values: dict[str, float]) -> list[int]:
        p = self.profile.points[name]
        wo = self.profile.word_order_of(p)
        value = values[name]
        try:
            return encode(p, value, wo, self._sf(p, values))
        except CodecError:
            # A physical value beyond what the register can show is served saturated.
            lo, hi = _LIMITS[p.type]
            raw = 0 if not math.isfinite(value) else (hi if value > 0 else lo)
            return raw_to_registers(raw, p.type, wo)

    def _check(
        self, table: Table, address: int, count: int, *, gaps: bool = False
    ) -> ExcCodes | None:
        if count < 1:
            return ExcCodes.ILLEGAL_VALUE
        for a in range(address, address + count):
            if (table, a) not in self.index and not (gaps and (table, a) in self.gaps):
                return ExcCodes.ILLEGAL_ADDRESS
        return None

    def read(self, fc: int, address: int, count: int) -> list[int] | list[bool] | ExcCodes:
        """Registers (or bits) for a read request."""
        table = TABLE_OF_FC[fc]
        key = (table, address, count)
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._layout(table, address, count)
            if len(self._layouts) < _MAX_LAYOUTS:  # a client scanning addresses grows no cache
                self._layouts[key] = layout
        if isinstance(layout, ExcCodes):
            return layout
        names, cells = layout
        values = self._values()
        words = {name: self._encode(name, values) for name in names}
        out = [0 if name is None else words[name][off] for name, off in cells]
        if table in (Table.coil, Table.discrete):
            return [bool(v) for v in out]
        return out

    def _layout(self, table: Table, address: int, count: int) -> _Layout | ExcCodes:
        """The points a read touches and, per address, which point's word (None: a gap)."""
        if (err := self._check(table, address, count, gaps=True)) is not None:
            return err
        gap: tuple[str | None, int] = (None, 0)
        cells = [self.index.get((table, a), gap) for a in range(address, address + count)]
        names = tuple(dict.fromkeys(name for name, _ in cells if name is not None))
        return names, cells

    def write(self, fc: int, address: int, regs: list[int] | list[bool]) -> ExcCodes | None:
        """Validate and apply a write request."""
        table = TABLE_OF_FC[fc]
        if (err := self._check(table, address, len(regs))) is not None:
            return err
        touched: dict[str, list[int]] = {}
        values = self._values()
        for i, r in enumerate(regs):
            name, off = self.index[(table, address + i)]
            if self.profile.points[name].access != "rw":
                return ExcCodes.ILLEGAL_ADDRESS
            if name not in touched:
                touched[name] = self._encode(name, values)
            touched[name][off] = int(r) & 0xFFFF
        new: dict[str, float] = {}
        for name, words in touched.items():
            p = self.profile.points[name]
            value = decode(p, words, self.profile.word_order_of(p), self._sf(p, values))
            if p.type is not PointType.bool:
                if not math.isfinite(value):
                    return ExcCodes.ILLEGAL_VALUE
                tol = 1e-9 * max(1.0, abs(value))
                if (p.min is not None and value < p.min - tol) or (
                    p.max is not None and value > p.max + tol
                ):
                    return ExcCodes.ILLEGAL_VALUE
            new[name] = value
        self.device.command(new)
        return None


def _gaps(index: dict[tuple[Table, int], tuple[str, int]], longest: int) -> set[tuple[Table, int]]:
    """The unmapped addresses lying in runs of at most `longest` between two mapped ones."""
    out: set[tuple[Table, int]] = set()
    if longest <= 0:
        return out
    by_table: dict[Table, list[int]] = {}
    for table, a in index:
        by_table.setdefault(table, []).append(a)
    for table, addresses in by_table.items():
        addresses.sort()
        for lo, hi in itertools.pairwise(addresses):
            if 1 < hi - lo <= longest + 1:
                out.update((table, a) for a in range(lo + 1, hi))
    return out
