"""The VEN's OAuth2 token (client credentials), found through `/auth/server` where the VTN
offers it (else `auth/token` under the VTN's URL, the spec's default), cached and renewed
before it expires: at 80 % of `expires_in`, or on a 401."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pydantic import ValidationError

from devices.clock import Clock
from vpp.grid.oadr3.errors import VtnError
from vpp.grid.oadr3.wire import AuthServer, Token

if TYPE_CHECKING:
    from vpp.grid.oadr3.client import VtnClient


RENEW_AT = 0.8
"""Share of the token's lifetime after which a new one is fetched."""


class TokenSource:
    def __init__(self, client_id: str, client_secret: str, clock: Clock) -> None:
        self.client_id = client_id
        self._secret = client_secret
        self.clock = clock
        self._token: str | None = None
        self._renew_at = float("inf")
        self._token_url: str | None = None
        self._lock = asyncio.Lock()
        self.fetched = 0
        """Tokens fetched so far (tests: the cache works)."""

    def invalidate(self, token: str) -> None:
        """The VTN refused `token`: fetch a new one next time (unless one was already)."""
        if self._token == token:
            self._token = None

    async def token(self, client: VtnClient) -> str:
        """The cached token, or a new one (one fetch at a time: concurrent requests that
        all found it expired share the new one)."""
        async with self._lock:
            if self._token is not None and self.clock.monotonic() < self._renew_at:
                return self._token
            return await self._fetch(client)

    async def _fetch(self, client: VtnClient) -> str:
        url = await self._url(client)
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret,
        }
        what = f"POST {url} (token)"
        try:
            data = client.decode(await client.send("POST", url, what, form=form), what)
        except VtnError:
            self._token_url = None  # look it up again: the VTN may have moved it
            raise
        try:
            token = Token.model_validate(data)
        except ValidationError as e:
            raise VtnError(f"{what}: not a token response ({e.errors()[0]['msg']})") from e
        if token.token_type.lower() != "bearer":
            raise VtnError(f"{what}: token_type {token.token_type!r} is not Bearer")
        self._token = token.access_token
        self.fetched += 1
        lifetime = token.expires_in
        self._renew_at = (
            float("inf") if lifetime is None else self.clock.monotonic() + RENEW_AT * lifetime
        )
        return self._token

    async def _url(self, client: VtnClient) -> str:
        if self._token_url is not None:
            return self._token_url
        url = "/auth/token"
        what = "GET /auth/server"
        try:
            data = client.decode(await client.send("GET", "/auth/server", what), what)
            url = AuthServer.model_validate(data).tokenURL
        except (VtnError, ValidationError):
            pass  # not offered (it is optional): the spec's default path
        self._token_url = url
        return url
