"""Checks a real HTTP exchange (httpx) against the server's own OpenAPI description with
openapi-core: path, method, status, content type and the body's schema."""

from __future__ import annotations

from typing import Any

import httpx
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict


class _Request:
    """An httpx request as openapi-core's Request protocol."""

    def __init__(self, r: httpx.Request) -> None:
        self.host_url = f"{r.url.scheme}://{r.url.netloc.decode()}"
        self.path = r.url.path
        self.method = r.method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(r.url.params.multi_items())),
            header=Headers(list(r.headers.items())),
            cookie=ImmutableMultiDict(),
        )
        self.content_type = r.headers.get("content-type", "")
        self.body = r.content or None


class _Response:
    """An httpx response as openapi-core's Response protocol."""

    def __init__(self, r: httpx.Response) -> None:
        self.data = r.content
        self.status_code = r.status_code
        self.content_type = r.headers.get("content-type", "")
        self.headers = Headers(list(r.headers.items()))


def openapi_of(spec: dict[str, Any]) -> OpenAPI:
    """The validator of a served `/openapi.json`."""
    return OpenAPI.from_dict(spec)


def check(openapi: OpenAPI, response: httpx.Response) -> Any:
    """Raise unless `response` answers its request as the description says; its JSON."""
    openapi.validate_response(_Request(response.request), _Response(response))
    return response.json()
