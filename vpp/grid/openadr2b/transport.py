"""POSTs of OpenADR 2.0b XML to the VTN's services (simple HTTP, pull model): plain HTTP on
loopback, or https with a CA file and the client certificate of 2.0b's mutual TLS; with
2.0b's XML signatures, each message we send signed and each answer verified
(vpp.grid.openadr2b.signature).

A VTN that answers anything but HTTP 200, too much, or not at all within the timeout is a
`VtnError` (one line); the caller backs off and retries.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx

from vpp.grid.openadr2b.inbound import MAX_BYTES, Message, OadrError, read
from vpp.grid.openadr2b.signature import SignatureError, Signer, Verifier


class VtnError(Exception):
    """The VTN could not be reached or did not answer usably: one line saying why."""


def tls_context(
    ca_file: Path | None, cert_file: Path | None, key_file: Path | None
) -> ssl.SSLContext:
    """The https settings: the system's CAs or `ca_file`, and our client certificate.
    ValueError naming the site file's field when a file cannot be used."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as e:
        raise ValueError(f"grid.openadr2b.ca_file: cannot use {ca_file}: {e}") from None
    if cert_file is not None:
        try:
            context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
        except (OSError, ssl.SSLError) as e:
            raise ValueError(
                f"grid.openadr2b.cert_file/key_file: cannot use {cert_file}, {key_file}: {e}"
            ) from None
    elif key_file is not None:
        raise ValueError("grid.openadr2b.key_file: given without cert_file")
    return context


class VtnTransport:
    """One HTTP client to the VTN at `vtn_url` (its service root: `.../OpenADR2/Simple/2.0b`);
    `signer` signs what we send, `verifier` checks the VTN's answers, both on `now`."""

    def __init__(
        self,
        vtn_url: str,
        *,
        tls: ssl.SSLContext | None = None,
        timeout_s: float = 10.0,
        signer: Signer | None = None,
        verifier: Verifier | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if (signer or verifier) and now is None:
            raise ValueError("signatures need the clock (now)")
        self.vtn_url = vtn_url.rstrip("/")
        self._signer, self._verifier, self._now = signer, verifier, now
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            verify=tls if tls is not None else True,
            headers={"Content-Type": "application/xml"},
            follow_redirects=False,
        )

    async def post(self, service: str, body: bytes) -> Message | None:
        """POST `body` to `service` (EiRegisterParty, EiEvent, EiReport, OadrPoll); the
        VTN's answer read, or None when it answered an empty 200 (its answer to our
        oadrResponse)."""
        url = f"{self.vtn_url}/{service}"
        if self._signer is not None and self._now is not None:
            body = self._signer.sign(body, self._now())
        try:
            async with self._client.stream("POST", url, content=body) as reply:
                if reply.status_code != 200:
                    raise VtnError(f"{service}: HTTP {reply.status_code}")
                data = bytearray()
                async for chunk in reply.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_BYTES:
                        raise VtnError(f"{service}: answer over {MAX_BYTES} bytes")
        except httpx.HTTPError as e:
            raise VtnError(f"{service}: {e.__class__.__name__}: {e}".rstrip(": ")) from None
        if not bytes(data).strip():
            return None
        try:
            msg = read(bytes(data))  # defusedxml first: no DTD reaches the verifier
            if self._verifier is not None and self._now is not None:
                msg = read(self._verifier.verify(bytes(data), self._now()))
            return msg
        except (OadrError, SignatureError) as e:
            raise VtnError(f"{service}: {e}") from None

    async def close(self) -> None:
        await self._client.aclose()
