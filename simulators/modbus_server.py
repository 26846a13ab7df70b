"""Serves simulated devices over Modbus TCP: a small MBAP server of our own on asyncio.

One server listens on one (host, port) and answers for one or more unit ids, each a
`RegisterStore`. It speaks the function codes the devices need (1-6, 15, 16, 23) the way a
device does, frames and exception answers included; the agent's side stays pymodbus, its
real transport. pymodbus's own server costs several times more per request (a transaction
manager, PDU objects and a loop iteration per request), and a replay sends ~7 000 an hour.

Faults act here: `offline` closes the listener and its connections (connection refused),
`delay_s` answers late on the injected clock, `exception_code` answers every request with
that exception, `write_exception_code` every write. A unit id no store has gets exception 0B
(gateway target failed to respond), as pymodbus's server answers.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import ClassVar

from pymodbus.constants import ExcCodes

from devices.clock import Clock
from simulators.registers import RegisterStore

log = logging.getLogger(__name__)

_MBAP = struct.Struct(">HHHB")  # transaction id, protocol id (0), length, unit id
_ADDR_COUNT = struct.Struct(">HH")
_MAX_REGISTERS = 125
_MAX_BITS = 2000
_MAX_WRITE_REGISTERS = 123
_MAX_WRITE_BITS = 1968
_READ_FCS = {1, 2, 3, 4}
_WRITE_FCS = {5, 6, 15, 16}


class _Refused(Exception):
    """A request answered with a Modbus exception."""

    def __init__(self, code: ExcCodes) -> None:
        self.code = code


def _bits(values: list[int] | list[bool]) -> bytes:
    """Bits packed LSB first, as coils and discrete inputs travel."""
    out = bytearray((len(values) + 7) // 8)
    for i, v in enumerate(values):
        if v:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def _unbits(data: bytes, count: int) -> list[bool]:
    return [bool(data[i // 8] >> (i % 8) & 1) for i in range(count)]


def _regs(values: list[int] | list[bool]) -> bytes:
    return struct.pack(f">{len(values)}H", *values)  # the store's words are 0..0xFFFF


class _Answer:
    """Work out the response PDU of one request PDU against one register store."""

    def __init__(self, store: RegisterStore) -> None:
        self.store = store

    def _got(self, got: list[int] | list[bool] | ExcCodes) -> list[int] | list[bool]:
        if isinstance(got, ExcCodes):
            raise _Refused(got)
        return got

    def _set(self, fc: int, address: int, values: list[int] | list[bool]) -> None:
        if (code := self.store.device.faults.write_exception_code) is not None:
            raise _Refused(ExcCodes(code))
        if (err := self.store.write(fc, address, list(values))) is not None:
            raise _Refused(err)

    def pdu(self, fc: int, body: bytes) -> bytes:
        """The response PDU to request `fc` with `body` (after the function code)."""
        try:
            return self._pdu(fc, body)
        except _Refused as r:
            return bytes((fc | 0x80, int(r.code)))
        except (struct.error, IndexError):  # a request shorter than its function code says
            return bytes((fc | 0x80, int(ExcCodes.ILLEGAL_VALUE)))

    def _pdu(self, fc: int, body: bytes) -> bytes:
        if fc not in _READ_FCS and fc not in _WRITE_FCS and fc != 23:
            raise _Refused(ExcCodes.ILLEGAL_FUNCTION)
        if (code := self.store.device.faults.exception_code) is not None:
            raise _Refused(ExcCodes(code))
        if fc in _READ_FCS:
            address, count = _ADDR_COUNT.unpack_from(body)
            bits = fc in (1, 2)
            if not 1 <= count <= (_MAX_BITS if bits else _MAX_REGISTERS):
                raise _Refused(ExcCodes.ILLEGAL_VALUE)
            data = (_bits if bits else _regs)(self._got(self.store.read(fc, address, count)))
            return bytes((fc, len(data))) + data
        if fc == 5:
            address, value = _ADDR_COUNT.unpack_from(body)
            if value not in (0x0000, 0xFF00):
                raise _Refused(ExcCodes.ILLEGAL_VALUE)
            self._set(5, address, [value == 0xFF00])
            return bytes((fc,)) + body[:4]
        if fc == 6:
            address, value = _ADDR_COUNT.unpack_from(body)
            self._set(6, address, [value])
            back = self._got(self.store.read(3, address, 1))
            return bytes((fc,)) + _ADDR_COUNT.pack(address, int(back[0]))
        if fc in (15, 16):
            address, count = _ADDR_COUNT.unpack_from(body)
            nbytes = body[4]
            data = body[5 : 5 + nbytes]
            if fc == 15:
                if not 1 <= count <= _MAX_WRITE_BITS or nbytes != (count + 7) // 8:
                    raise _Refused(ExcCodes.ILLEGAL_VALUE)
                values: list[int] | list[bool] = _unbits(data, count)
            else:
                if not 1 <= count <= _MAX_WRITE_REGISTERS or nbytes != 2 * count:
                    raise _Refused(ExcCodes.ILLEGAL_VALUE)
                values = list(struct.unpack(f">{count}H", data))
            if len(data) != nbytes:
                raise _Refused(ExcCodes.ILLEGAL_VALUE)
            self._set(fc, address, values)
            return bytes((fc,)) + _ADDR_COUNT.pack(address, count)
        # 23: write, then read, holding registers.
        r_addr, r_count, w_addr, w_count = struct.unpack_from(">HHHH", body)
        nbytes = body[8]
        data = body[9 : 9 + nbytes]
        if not 1 <= r_count <= _MAX_REGISTERS or not 1 <= w_count <= 121:
            raise _Refused(ExcCodes.ILLEGAL_VALUE)
        if nbytes != 2 * w_count or len(data) != nbytes:
            raise _Refused(ExcCodes.ILLEGAL_VALUE)
        self._set(16, w_addr, list(struct.unpack(f">{w_count}H", data)))
        regs = _regs(self._got(self.store.read(3, r_addr, r_count)))
        return bytes((fc, len(regs))) + regs


class _Connection(asyncio.Protocol):
    """One client connection: MBAP frames in, one answer per request out, in order."""

    # Strong references to the delayed answers' tasks until each answer is out.
    _tasks: ClassVar[set[asyncio.Task[None]]] = set()

    def __init__(self, server: ModbusDeviceServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self._buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        while len(buf) >= _MBAP.size:
            tid, proto, length, unit = _MBAP.unpack_from(buf)
            if proto != 0 or not 2 <= length <= 254:  # not Modbus TCP: drop the connection
                self._buf = b""
                if self.transport is not None:
                    self.transport.close()
                return
            end = 6 + length
            if len(buf) < end:
                break
            self._request(tid, unit, buf[_MBAP.size : end])
            buf = buf[end:]
        self._buf = buf

    def _request(self, tid: int, unit: int, pdu: bytes) -> None:
        store = self.server.stores.get(unit)
        if store is None:
            self._send(tid, unit, bytes((pdu[0] | 0x80, int(ExcCodes.GATEWAY_NO_RESPONSE))))
            return
        delay_s = store.device.faults.delay_s
        if delay_s > 0:
            task = asyncio.get_running_loop().create_task(self._late(tid, unit, pdu, delay_s))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self._send(tid, unit, _Answer(store).pdu(pdu[0], pdu[1:]))

    async def _late(self, tid: int, unit: int, pdu: bytes, delay_s: float) -> None:
        await self.server.clock.sleep(delay_s)
        store = self.server.stores.get(unit)
        if store is not None:
            self._send(tid, unit, _Answer(store).pdu(pdu[0], pdu[1:]))

    def _send(self, tid: int, unit: int, pdu: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(_MBAP.pack(tid, 0, len(pdu) + 1, unit) + pdu)


class ModbusDeviceServer:
    """A Modbus TCP server on (host, port) for one or more unit ids.

    `port=0` asks the OS for a port; `port` tells which one after `start()`, and a restart
    after `offline` listens on the same port again.
    """

    def __init__(
        self, clock: Clock, stores: dict[int, RegisterStore], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.clock = clock
        self.host = host
        self.port = port
        self.stores = stores
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None

    @property
    def listening(self) -> bool:
        """True while the port accepts connections."""
        return self._server is not None

    async def start(self) -> None:
        """Listen (no-op when already listening)."""
        if self._server is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(
                lambda: _Connection(self), self.host, self.port, reuse_address=True
            )
        except OSError as e:
            served = ", ".join(s.device.id for s in self.stores.values())
            raise OSError(
                f"cannot listen on {self.host}:{self.port} for {served}: the port is taken, "
                "or the address is not this machine's"
            ) from e
        self.port = int(server.sockets[0].getsockname()[1])
        self._server = server

    async def stop(self) -> None:
        """Close the listener and every open connection (clients see refused/reset)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        self.connections.clear()
        await server.wait_closed()

    async def set_offline(self, offline: bool) -> None:
        """Stop or resume listening."""
        if offline:
            await self.stop()
        else:
            await self.start()
