"""Serves simulated devices over Modbus TCP with the pymodbus server.

One server listens on one (host, port) and answers for one or more unit ids, each a
`RegisterStore`. Faults act here: `offline` closes the listener and its connections
(connection refused), `delay_s` answers late on the injected clock, `exception_code`
answers every request with that exception, `write_exception_code` every write.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from devices.clock import Clock
from simulators.registers import TABLE_OF_FC, RegisterStore

log = logging.getLogger(__name__)

# Function codes whose request is a write; the readback pymodbus does after a write uses the
# same code and must not be delayed a second time.
_WRITE_FCS = {5, 6, 15, 16}


class _Datastore:
    """What the pymodbus request handler calls (the SimCore interface), routed per unit id
    to our register stores so that every answer reflects the physics and its faults."""

    def __init__(self, clock: Clock, stores: dict[int, RegisterStore]) -> None:
        self.clock = clock
        self.stores = stores

    def device_ids(self) -> list[int]:
        return list(self.stores)

    def _store(self, device_id: int) -> RegisterStore:
        store = self.stores.get(device_id)
        if store is None:
            raise NoSuchIdException(f"no unit id {device_id}")
        return store

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        store = self._store(device_id)
        if func_code not in TABLE_OF_FC:
            return ExcCodes.ILLEGAL_FUNCTION
        if func_code not in _WRITE_FCS:
            if (early := await self._faults(store)) is not None:
                return early
        return store.read(func_code, address, count)

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        store = self._store(device_id)
        if func_code not in TABLE_OF_FC:
            return ExcCodes.ILLEGAL_FUNCTION
        if (early := await self._faults(store)) is not None:
            return early
        if (code := store.device.faults.write_exception_code) is not None:
            return ExcCodes(code)
        return store.write(func_code, address, list(values))

    async def _faults(self, store: RegisterStore) -> ExcCodes | None:
        faults = store.device.faults
        if faults.delay_s > 0:
            await self.clock.sleep(faults.delay_s)
        if faults.exception_code is not None:
            return ExcCodes(faults.exception_code)
        return None


class _RequestHandler(ServerRequestHandler):
    """pymodbus's connection handler, answering from a task of this loop.

    pymodbus hands each request to `asyncio.run_coroutine_threadsafe`, which wakes the loop
    through its self-pipe and chains a thread-safe future: three loop iterations and a
    syscall per request in a replay, for a server that always runs on the loop's thread.
    """

    # Strong references to the answering tasks until each answer is out.
    _tasks: ClassVar[set[asyncio.Task[None]]] = set()

    def handle_later(self) -> None:
        pdu = self.last_pdu
        context: _Datastore = self.server.context
        store = context.stores.get(pdu.dev_id) if pdu is not None else None
        if store is not None and store.device.faults.delay_s > 0:
            task = self.loop.create_task(self.handle_request())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        # Without a delay nothing in the answer waits: run it here, as an eager task would
        # (a task less per request).
        coro = self.handle_request()
        try:
            coro.send(None)
        except StopIteration:
            return
        coro.close()
        raise RuntimeError("a Modbus request without a delay fault waited")


class _TcpServer(ModbusTcpServer):
    def callback_new_connection(self) -> ServerRequestHandler:
        return _RequestHandler(self, self.trace_packet, self.trace_pdu, self.trace_connect)


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
        self._server: ModbusTcpServer | None = None

    @property
    def listening(self) -> bool:
        """True while the port accepts connections."""
        return self._server is not None

    async def start(self) -> None:
        """Listen (no-op when already listening)."""
        if self._server is not None:
            return
        # pymodbus wants a device description to build its own datastore; ours replaces it.
        placeholder = SimDevice(id=1, simdata=[SimData(0, datatype=DataType.REGISTERS)])
        server = _TcpServer(placeholder, address=(self.host, self.port))
        server.context = _Datastore(self.clock, self.stores)  # type: ignore[assignment]
        try:
            await server.serve_forever(background=True)
        except RuntimeError as e:  # pymodbus's "Could not start listen": say where
            served = ", ".join(s.device.id for s in self.stores.values())
            raise OSError(
                f"cannot listen on {self.host}:{self.port} for {served}: the port is taken, "
                "or the address is not this machine's"
            ) from e
        listener: Any = server.transport
        self.port = int(listener.sockets[0].getsockname()[1])
        self._server = server

    async def stop(self) -> None:
        """Close the listener and every open connection (clients see refused/reset)."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()

    async def set_offline(self, offline: bool) -> None:
        """Stop or resume listening."""
        if offline:
            await self.stop()
        else:
            await self.start()
