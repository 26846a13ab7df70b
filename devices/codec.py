"""Register codec shared by the Modbus driver and the simulator: one map, two sides.

Registers are 16-bit big-endian; 32-bit values take two registers in the point's word order
("big" = high word first, ABCD as SunSpec; "little" = low word first, CDAB).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Literal

from devices.profile import ModbusPoint, ModbusProfile, PointType, Table

MAX_READ_REGISTERS = 125
MAX_READ_BITS = 2000

WordOrder = Literal["big", "little"]

_STRUCT = {PointType.u32: ">I", PointType.s32: ">i", PointType.f32: ">f"}
_RANGE = {
    PointType.u16: (0, 0xFFFF),
    PointType.s16: (-0x8000, 0x7FFF),
    PointType.u32: (0, 0xFFFFFFFF),
    PointType.s32: (-0x80000000, 0x7FFFFFFF),
}


class CodecError(ValueError):
    """A value that does not fit its point's type."""


def raw_to_registers(raw: int | float, type_: PointType, word_order: WordOrder) -> list[int]:
    """Encode a raw (unscaled) number as registers."""
    if type_ is PointType.bool:
        return [1 if raw else 0]
    if type_ in (PointType.u16, PointType.s16):
        lo, hi = _RANGE[type_]
        iv = int(raw)
        if not lo <= iv <= hi:
            raise CodecError(f"{iv} does not fit {type_}")
        return [iv & 0xFFFF]
    if type_ is PointType.f32:
        data = struct.pack(">f", float(raw))
    else:
        lo, hi = _RANGE[type_]
        iv = int(raw)
        if not lo <= iv <= hi:
            raise CodecError(f"{iv} does not fit {type_}")
        data = struct.pack(_STRUCT[type_], iv)
    high, low = struct.unpack(">HH", data)
    return [high, low] if word_order == "big" else [low, high]


def registers_to_raw(regs: list[int], type_: PointType, word_order: WordOrder) -> int | float:
    """Decode registers into a raw (unscaled) number."""
    if type_ is PointType.bool:
        return 1 if regs[0] else 0
    if type_ is PointType.u16:
        return regs[0] & 0xFFFF
    if type_ is PointType.s16:
        v = regs[0] & 0xFFFF
        return v - 0x10000 if v & 0x8000 else v
    high, low = (regs[0], regs[1]) if word_order == "big" else (regs[1], regs[0])
    data = struct.pack(">HH", high & 0xFFFF, low & 0xFFFF)
    return struct.unpack(_STRUCT[type_], data)[0]


def scale_of(point: ModbusPoint, sf: int | None) -> float:
    """Multiplier from raw to engineering units."""
    return point.scale * (10.0**sf if sf is not None else 1.0)


def to_raw(point: ModbusPoint, value: float, sf: int | None = None) -> int | float:
    """Engineering value to the raw number stored in the register(s), rounded for integers."""
    if point.type is PointType.bool:
        return 1 if value else 0
    raw = value / scale_of(point, sf)
    if point.type is PointType.f32:
        return raw
    if not math.isfinite(raw):
        raise CodecError(f"{value} is not a finite number")
    return round(raw)


def from_raw(point: ModbusPoint, raw: int | float, sf: int | None = None) -> float:
    """Raw register number to engineering units."""
    if point.type is PointType.bool:
        return float(bool(raw))
    return float(raw) * scale_of(point, sf)


def encode(
    point: ModbusPoint, value: float, word_order: WordOrder, sf: int | None = None
) -> list[int]:
    """Engineering value to registers."""
    return raw_to_registers(to_raw(point, value, sf), point.type, word_order)


def decode(
    point: ModbusPoint, regs: list[int], word_order: WordOrder, sf: int | None = None
) -> float:
    """Registers to engineering value."""
    return from_raw(point, registers_to_raw(regs, point.type, word_order), sf)


@dataclass(frozen=True)
class ReadBlock:
    """One read request: a contiguous run of addresses in one table, and the points in it."""

    table: Table
    address: int
    count: int
    points: tuple[str, ...]


def plan_reads(profile: ModbusProfile, names: list[str] | None = None) -> list[ReadBlock]:
    """Group points into as few requests as possible (≤125 registers, ≤2000 bits each).

    A block spans a run of unmapped addresses only up to the profile's `max_read_gap` (0 by
    default: devices, and our simulator, may refuse reads over undefined addresses).
    """
    wanted = names if names is not None else list(profile.points)
    # Scale-factor registers must be read with their values.
    extra = [p.scale_factor for n in wanted if (p := profile.points[n]).scale_factor]
    chosen = sorted(
        {n: profile.points[n] for n in [*wanted, *[e for e in extra if e]]}.items(),
        key=lambda kv: (kv[1].table, kv[1].address),
    )
    gap = profile.max_read_gap
    blocks: list[ReadBlock] = []
    cur: list[str] = []
    cur_table: Table | None = None
    start = end = 0
    for name, p in chosen:
        limit = MAX_READ_BITS if p.table in (Table.coil, Table.discrete) else MAX_READ_REGISTERS
        fits = (
            cur
            and p.table == cur_table
            and end <= p.address <= end + gap
            and p.address + p.count - start <= limit
        )
        if not fits:
            if cur and cur_table is not None:
                blocks.append(ReadBlock(cur_table, start, end - start, tuple(cur)))
            cur, cur_table, start = [], p.table, p.address
        cur.append(name)
        end = p.address + p.count
    if cur and cur_table is not None:
        blocks.append(ReadBlock(cur_table, start, end - start, tuple(cur)))
    return blocks


def block_raw(
    profile: ModbusProfile, block: ReadBlock, regs: list[int] | list[bool]
) -> dict[str, int | float]:
    """Raw numbers of every point in a block read."""
    raw: dict[str, int | float] = {}
    for name in block.points:
        p = profile.points[name]
        off = p.address - block.address
        words = [int(r) for r in regs[off : off + p.count]]
        raw[name] = registers_to_raw(words, p.type, profile.word_order_of(p))
    return raw


def engineering(profile: ModbusProfile, raw: dict[str, int | float]) -> dict[str, float]:
    """Raw numbers (from one or more blocks) to engineering units, scale factors applied."""
    out: dict[str, float] = {}
    for name, value in raw.items():
        p = profile.points[name]
        sf = int(raw[p.scale_factor]) if p.scale_factor and p.scale_factor in raw else None
        out[name] = from_raw(p, value, sf)
    return out
