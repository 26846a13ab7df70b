"""A hostile or broken VTN for the tests: a real HTTP server on a free loopback port that
answers each POST with the next of a scripted list of answers (status, body, or a hang or a
dropped connection), then with `fallback`. Not openleadr: it says exactly what a test
needs, including what no real VTN should.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

OADR = 'xmlns:oadr="http://openadr.org/oadr-2.0b/2012/07"'
EI = 'xmlns:ei="http://docs.oasis-open.org/ns/energyinterop/201110"'
PYLD = 'xmlns:pyld="http://docs.oasis-open.org/ns/energyinterop/201110/payloads"'
XCAL = 'xmlns:xcal="urn:ietf:params:xml:ns:icalendar-2.0"'
STRM = 'xmlns:strm="urn:ietf:params:xml:ns:icalendar-2.0:stream"'


def payload(body: str) -> bytes:
    return (
        f'<?xml version="1.0"?><oadr:oadrPayload {OADR} {EI} {PYLD} {XCAL} {STRM}>'
        f'<oadr:oadrSignedObject oadr:Id="oadrSignedObject">{body}'
        "</oadr:oadrSignedObject></oadr:oadrPayload>"
    ).encode()


def ei_response(code: int = 200) -> str:
    return (
        f"<ei:eiResponse><ei:responseCode>{code}</ei:responseCode>"
        "<ei:responseDescription>OK</ei:responseDescription><pyld:requestID/></ei:eiResponse>"
    )


def registered(ven_id: str = "ven-h", poll: str = "PT1S") -> bytes:
    return payload(
        f"<oadr:oadrCreatedPartyRegistration>{ei_response()}"
        f"<ei:registrationID>reg-h</ei:registrationID><ei:venID>{ven_id}</ei:venID>"
        "<ei:vtnID>hostile</ei:vtnID><oadr:oadrRequestedOadrPollFreq>"
        f"<xcal:duration>{poll}</xcal:duration></oadr:oadrRequestedOadrPollFreq>"
        "</oadr:oadrCreatedPartyRegistration>"
    )


def ok_response() -> bytes:
    return payload(
        f"<oadr:oadrResponse>{ei_response()}<ei:venID>ven-h</ei:venID></oadr:oadrResponse>"
    )


def reregistration() -> bytes:
    return payload(
        "<oadr:oadrRequestReregistration><ei:venID>ven-h</ei:venID></oadr:oadrRequestReregistration>"
    )


def registered_report() -> bytes:
    return payload(f"<oadr:oadrRegisteredReport>{ei_response()}</oadr:oadrRegisteredReport>")


def event_xml(event_id: str, modification: str, start: str, value: str, status: str = "far") -> str:
    return (
        "<oadr:oadrEvent><ei:eiEvent><ei:eventDescriptor>"
        f"<ei:eventID>{event_id}</ei:eventID><ei:modificationNumber>{modification}"
        f"</ei:modificationNumber><ei:eventStatus>{status}</ei:eventStatus>"
        "</ei:eventDescriptor><ei:eiActivePeriod><xcal:properties>"
        f"<xcal:dtstart><xcal:date-time>{start}</xcal:date-time></xcal:dtstart>"
        "<xcal:duration><xcal:duration>PT30M</xcal:duration></xcal:duration>"
        "</xcal:properties></ei:eiActivePeriod><ei:eiEventSignals><ei:eiEventSignal>"
        "<strm:intervals><ei:interval><xcal:duration><xcal:duration>PT30M</xcal:duration>"
        "</xcal:duration><ei:signalPayload><ei:payloadFloat>"
        f"<ei:value>{value}</ei:value></ei:payloadFloat></ei:signalPayload></ei:interval>"
        "</strm:intervals><ei:signalName>LOAD_DISPATCH</ei:signalName>"
        "<ei:signalType>delta</ei:signalType><ei:signalID>s1</ei:signalID>"
        "</ei:eiEventSignal></ei:eiEventSignals></ei:eiEvent>"
        "<oadr:oadrResponseRequired>always</oadr:oadrResponseRequired></oadr:oadrEvent>"
    )


def distribute(*events: str) -> bytes:
    return payload(
        "<oadr:oadrDistributeEvent><pyld:requestID>d1</pyld:requestID>"
        f"<ei:vtnID>hostile</ei:vtnID>{''.join(events)}</oadr:oadrDistributeEvent>"
    )


HANG = "hang"
"""Accept the request and never answer."""
DROP = "drop"
"""Close the connection without an answer."""


@dataclass
class Answer:
    status: int = 200
    body: bytes | str = b""


@dataclass
class HostileVtn:
    """Scripted answers per service (the URL's last path segment), then `fallback`."""

    script: dict[str, deque[Answer]] = field(default_factory=dict)
    fallback: Answer = field(default_factory=lambda: Answer(500, b"oops"))
    requests: list[tuple[str, bytes]] = field(default_factory=list)
    port: int = 0
    fallbacks: dict[str, Answer] = field(default_factory=dict)
    """Per service, what it answers once its script has run out (else `fallback`)."""
    fresh: Callable[[bytes], bytes] | None = None
    """Applied to each fallback answer as it is sent (signing it afresh, with a new nonce)."""
    _closing: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/OpenADR2/Simple/2.0b"

    def then(self, service: str, *answers: Answer) -> None:
        self.script.setdefault(service, deque()).extend(answers)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            service = lines[0].split()[1].rstrip("/").rsplit("/", 1)[-1]
            length = next(
                (
                    int(v)
                    for k, _, v in (ln.partition(":") for ln in lines)
                    if k.lower() == "content-length"
                ),
                0,
            )
            body = await reader.readexactly(length)
            self.requests.append((service, body))
            queue = self.script.get(service)
            if queue:
                answer = queue.popleft()
            else:
                answer = self.fallbacks.get(service, self.fallback)
                if self.fresh is not None and isinstance(answer.body, bytes):
                    answer = Answer(answer.status, self.fresh(answer.body))
            if answer.body == HANG:
                await self._closing.wait()
            if answer.body == DROP:
                return
            data = answer.body if isinstance(answer.body, bytes) else answer.body.encode()
            writer.write(
                f"HTTP/1.1 {answer.status} X\r\nContent-Type: application/xml\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[HostileVtn]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self._closing.set()
            server.close()
            await asyncio.sleep(0)  # the hanging handlers return
