"""HTTP to the VTN: bearer token, JSON in and out, and every failure as one `VtnError` line.

Time stands still on a virtual clock while a request is in flight (`clock.hold()`), as it
does for a broker round trip. The VTN is untrusted: a refused connection, a timeout, a 5xx,
a body that is not JSON or not of the expected shape all end as a VtnError naming the
request, which the link logs and retries with backoff.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
import structlog

from devices.clock import Clock
from vpp.grid.oadr3.errors import VtnError

if TYPE_CHECKING:
    from vpp.grid.oadr3.auth import TokenSource

log = structlog.get_logger(__name__)

TIMEOUT_S = 10.0
"""Per request (connect, read, write): a VTN that hangs is a failed request, retried."""


class VtnClient:
    """Requests to the VTN at `base_url` (the spec's paths are relative to it)."""

    def __init__(
        self,
        base_url: str,
        clock: Clock,
        tokens: TokenSource,
        http: httpx.AsyncClient,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.tokens = tokens
        self.http = http

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """The response's JSON; VtnError for anything but a 2xx with a JSON body. A 401 gets
        a new token and one more try."""
        what = f"{method} {path}"
        for attempt in (1, 2):
            token = await self.tokens.token(self)
            headers = {"Authorization": f"Bearer {token}"}
            response = await self.send(
                method, path, what, params=params, body=body, headers=headers
            )
            if response.status_code == 401 and attempt == 1:
                self.tokens.invalidate(token)
                continue
            return decode(response, what)
        raise AssertionError("unreachable")

    @staticmethod
    def decode(response: httpx.Response, what: str) -> Any:
        """A 2xx response's JSON body, else VtnError (see `decode`)."""
        return decode(response, what)

    async def send(
        self,
        method: str,
        url: str,
        what: str,
        *,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        body: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One HTTP exchange (no token); VtnError when it cannot be made."""
        target = url if url.startswith(("http://", "https://")) else self.base_url + url
        try:
            async with self.clock.hold():
                return await self.http.request(
                    method, target, params=params, json=body, data=form, headers=headers
                )
        except httpx.HTTPError as e:
            raise VtnError(f"{what}: {type(e).__name__}: {e or 'no answer'}") from e


def decode(response: httpx.Response, what: str) -> Any:
    """A 2xx response's JSON body, else VtnError naming the status and the problem title."""
    if not 200 <= response.status_code < 300:
        detail = ""
        try:
            problem = response.json()
            if isinstance(problem, dict):
                detail = str(problem.get("detail") or problem.get("title") or "")[:200]
        except ValueError:
            pass
        raise VtnError(f"{what}: HTTP {response.status_code}" + (f": {detail}" if detail else ""))
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError) as e:
        raise VtnError(f"{what}: the body is not JSON ({str(e)[:80]})") from e


def json_text(data: Any) -> str:
    """Compact JSON for logs."""
    return json.dumps(data, separators=(",", ":"))[:300]
