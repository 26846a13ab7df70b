"""The test VTN's REST interface (Starlette), in memory, to openadr3.yaml.

Implemented: /auth/server, /auth/token (form-encoded client credentials), and create, search,
read, update and delete of programs, events, reports, subscriptions (stored; no webhook is
called), vens and resources, with the spec's query parameters (targets, skip, limit ≤ 50,
programID, eventID, clientName, venName, venID, resourceName). Not implemented: the MQTT
notifier's topics of other objects than programs and events (501 with a problem),
and webhooks (subscriptions are stored, never called). With `mqtt_uri` set, /notifiers
offers an MQTT notifier (anonymous) and every create, update and delete is published as a
`notification` on `{kind}/{operation}` (e.g. `events/create`).

Every request body is validated against its component schema (400 with a problem naming
the field when it breaks it) and every response body is validated before it leaves; each
exchange is kept in `vtn.exchanges` with what was wrong, so a test asserts that a client
sent, and this VTN answered, nothing but spec-valid bodies. `vtn.faults` makes it hostile
(bad JSON, wrong types, 500s, a token endpoint down) for the VEN's robustness tests.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.oadr3_vtn import spec

KINDS: dict[str, tuple[str, str, str]] = {
    # path: (objectType, request schema, response schema)
    "programs": ("PROGRAM", "programRequest", "program"),
    "events": ("EVENT", "eventRequest", "event"),
    "reports": ("REPORT", "reportRequest", "report"),
    "subscriptions": ("SUBSCRIPTION", "subscriptionRequest", "subscription"),
    "vens": ("VEN", "venRequest", "ven"),
    "resources": ("RESOURCE", "resourceRequest", "resource"),
}
FILTERS = {
    "programs": ("targets",),
    "events": ("programID", "targets"),
    "reports": ("programID", "eventID", "clientName"),
    "subscriptions": ("programID", "clientName", "targets"),
    "vens": ("venName", "targets"),
    "resources": ("resourceName", "venID", "targets"),
}
BL_ONLY_WRITES = ("programs", "events")
"""Only the business logic (role `bl`) writes these (the spec's write_programs/events)."""
VEN_ONLY_WRITES = ("reports",)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Exchange:
    """One request as the VTN saw it and what it answered."""

    method: str
    path: str
    query: str
    client_id: str | None
    body: Any
    status: int
    answer: Any
    request_problems: list[str]
    response_problems: list[str]


@dataclass
class Vtn:
    """The VTN's state: clients by id (secret, role `bl` or `ven`), objects by kind."""

    clients: dict[str, tuple[str, str]] = field(default_factory=dict)
    objects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {k: {} for k in KINDS}
    )
    tokens: dict[str, str] = field(default_factory=dict)
    token_lifetime_s: int = 3600
    exchanges: list[Exchange] = field(default_factory=list)
    faults: dict[str, str] = field(default_factory=dict)
    """Path prefix → fault: `bad_json`, `wrong_types`, `500`, `hang` (answers after 3 s)."""
    base_url: str = ""
    token_url: str | None = None
    """What /auth/server names as the token endpoint (default: this VTN's /auth/token); a
    port nothing listens on is a token endpoint down."""
    mqtt_uri: str | None = None
    """The MQTT notifier's broker as /notifiers announces it (None: no notifier)."""
    publish: Callable[[str, bytes], None] | None = None
    """Sends a notification (topic, JSON) to that broker (tests.oadr3_vtn.server)."""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add_client(self, client_id: str, secret: str, role: str = "ven") -> None:
        self.clients[client_id] = (secret, role)

    def new_id(self, kind: str) -> str:
        return f"{kind[:-1]}-{next(self._ids)}"

    def create(self, kind: str, body: dict[str, Any], client_id: str | None) -> dict[str, Any]:
        """Store a new object as a VTN does: metadata provisioned, client values kept."""
        obj = {k: v for k, v in body.items() if v is not None}
        now = _now()
        obj.update(
            id=self.new_id(kind),
            createdDateTime=now,
            modificationDateTime=now,
            objectType=KINDS[kind][0],
        )
        if kind in ("reports", "subscriptions", "vens", "resources"):
            obj["clientID"] = client_id or "unknown"
        self.objects[kind][obj["id"]] = obj
        self._changed(kind, "CREATE", obj)
        return obj

    def update(self, kind: str, oid: str, body: dict[str, Any]) -> dict[str, Any]:
        old = self.objects[kind][oid]
        obj = {k: v for k, v in body.items() if v is not None}
        obj.update(
            id=oid,
            createdDateTime=old["createdDateTime"],
            modificationDateTime=_now(),
            objectType=KINDS[kind][0],
        )
        if "clientID" in old:
            obj["clientID"] = old["clientID"]
        self.objects[kind][oid] = obj
        self._changed(kind, "UPDATE", obj)
        return obj

    def delete(self, kind: str, oid: str) -> dict[str, Any]:
        obj = self.objects[kind].pop(oid)
        self._changed(kind, "DELETE", obj)
        return obj

    def _changed(self, kind: str, operation: str, obj: dict[str, Any]) -> None:
        """Notify on the MQTT notifier's topic of the operation (`events/create`...): a
        `notification` object as openadr3.yaml defines it."""
        if self.publish is None:
            return
        note = {"objectType": KINDS[kind][0], "operation": operation, "object": obj}
        problems = spec.responses().problems("notification", note)
        if problems:
            raise AssertionError(f"the test VTN made an invalid notification: {problems[0]}")
        self.publish(f"{kind}/{operation.lower()}", json.dumps(note).encode())

    def bad_exchanges(self) -> list[Exchange]:
        """Exchanges with a body that broke the spec, either way."""
        return [e for e in self.exchanges if e.request_problems or e.response_problems]


def problem(status: int, title: str, detail: str = "") -> JSONResponse:
    body: dict[str, Any] = {"title": title, "status": status}
    if detail:
        body["detail"] = detail[:2000]
    return JSONResponse(body, status_code=status)


def _matches(kind: str, obj: dict[str, Any], query: Any) -> bool:
    for name in FILTERS[kind]:
        if name == "targets":
            wanted = query.getlist("targets")
            have = obj.get("targets") or []
            if wanted and have and not set(wanted) & set(have):
                return False
        elif name in query and obj.get(name) != query[name]:
            return False
    return True


def _int_param(query: Any, name: str, lo: int, hi: int | None) -> int | None:
    if name not in query:
        return None
    try:
        value = int(query[name])
    except ValueError:
        raise ValueError(f"{name}: must be an integer") from None
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name}: must be within {lo}..{hi if hi is not None else 'any'}")
    return value


def make_app(vtn: Vtn) -> Starlette:
    """The Starlette app serving `vtn`."""

    def record(
        request: Request,
        client_id: str | None,
        body: Any,
        response: Response,
        answer: Any,
        request_problems: list[str],
        response_problems: list[str],
    ) -> Response:
        vtn.exchanges.append(
            Exchange(
                request.method,
                request.url.path,
                request.url.query,
                client_id,
                body,
                response.status_code,
                answer,
                request_problems,
                response_problems,
            )
        )
        return response

    def answer(
        request: Request,
        client_id: str | None,
        body: Any,
        status: int,
        data: Any,
        schema: dict[str, Any],
        request_problems: list[str] | None = None,
    ) -> Response:
        problems = spec.responses().problems_of(schema, data)
        return record(
            request,
            client_id,
            body,
            JSONResponse(data, status_code=status),
            data,
            request_problems or [],
            problems,
        )

    def fault_for(path: str) -> str | None:
        for prefix, fault in vtn.faults.items():
            if path.startswith(prefix):
                return fault
        return None

    async def faulty(request: Request, fault: str) -> Response:
        if fault == "hang":
            await asyncio.sleep(3.0)
            return problem(503, "Service Unavailable", "too late")
        if fault == "bad_json":
            return Response("{not json", media_type="application/json")
        if fault == "500":
            return problem(500, "Internal Server Error", "injected")
        return JSONResponse(  # wrong_types
            [{"id": 7, "programID": ["x"], "intervals": "none"}]
            if request.method == "GET"
            else {"id": 7}
        )

    async def guard(request: Request) -> tuple[str | None, Response | None]:
        fault = fault_for(request.url.path)
        if fault is not None:
            return None, await faulty(request, fault)
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        client_id = vtn.tokens.get(token)
        if client_id is None:
            refused = problem(401, "Unauthorized", "a valid bearer token is required")
            return None, record(request, None, None, refused, None, [], [])
        return client_id, None

    async def auth_server(request: Request) -> Response:
        fault = fault_for(request.url.path)
        if fault is not None:
            return await faulty(request, fault)
        data = {"tokenURL": vtn.token_url or f"{vtn.base_url}/auth/token"}
        return answer(request, None, None, 200, data, {"$ref": _ref("authServerInfo")})

    async def auth_token(request: Request) -> Response:
        fault = fault_for(request.url.path)
        if fault is not None:
            return await faulty(request, fault)
        # application/x-www-form-urlencoded, as RFC 6749 says (no multipart to parse).
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        problems = spec.requests().problems("clientCredentialRequest", form)
        if problems:
            body = {"error": "invalid_request", "error_description": problems[0][:200]}
            return record(request, None, form, JSONResponse(body, 400), body, problems, [])
        known = vtn.clients.get(str(form["client_id"]))
        if known is None or known[0] != form["client_secret"]:
            body = {"error": "invalid_client", "error_description": "unknown client or secret"}
            return record(request, None, "<redacted>", JSONResponse(body, 401), body, [], [])
        token = secrets.token_urlsafe(24)
        vtn.tokens[token] = str(form["client_id"])
        data = {"access_token": token, "token_type": "Bearer", "expires_in": vtn.token_lifetime_s}
        return answer(
            request, None, "<redacted>", 200, data, {"$ref": _ref("clientCredentialResponse")}
        )

    async def collection(request: Request) -> Response:
        kind = request.url.path.strip("/").split("/")[0]
        client_id, refused = await guard(request)
        if refused is not None:
            return refused
        if request.method == "GET":
            try:
                skip = _int_param(request.query_params, "skip", 0, None) or 0
                limit = _int_param(request.query_params, "limit", 0, 50)
            except ValueError as e:
                return record(
                    request, client_id, None, problem(400, "Bad Request", str(e)), None, [], []
                )
            found = [
                o for o in vtn.objects[kind].values() if _matches(kind, o, request.query_params)
            ]
            found = found[skip : skip + (50 if limit is None else limit)]
            return answer(request, client_id, None, 200, found, spec.list_schema(KINDS[kind][2]))
        return await write(request, kind, client_id, None)

    async def item(request: Request) -> Response:
        kind = request.url.path.strip("/").split("/")[0]
        oid = request.path_params["oid"]
        client_id, refused = await guard(request)
        if refused is not None:
            return refused
        if oid not in vtn.objects[kind]:
            return record(
                request,
                client_id,
                None,
                problem(404, "Not Found", f"no {kind} {oid}"),
                None,
                [],
                [],
            )
        schema = {"$ref": _ref(KINDS[kind][2])}
        if request.method == "GET":
            return answer(request, client_id, None, 200, vtn.objects[kind][oid], schema)
        if request.method == "DELETE":
            if not allowed(kind, client_id):
                return record(request, client_id, None, problem(403, "Forbidden"), None, [], [])
            return answer(request, client_id, None, 200, vtn.delete(kind, oid), schema)
        return await write(request, kind, client_id, oid)

    def allowed(kind: str, client_id: str | None) -> bool:
        role = vtn.clients.get(client_id or "", ("", ""))[1]
        if kind in BL_ONLY_WRITES:
            return role == "bl"
        if kind in VEN_ONLY_WRITES:
            return role == "ven"
        return True

    async def write(
        request: Request, kind: str, client_id: str | None, oid: str | None
    ) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            return record(
                request,
                client_id,
                raw.decode("utf-8", "replace"),
                problem(400, "Bad Request", f"not JSON: {e}"),
                None,
                [f"$: not JSON: {e}"],
                [],
            )
        problems = spec.requests().problems(KINDS[kind][1], body)
        if problems:
            return record(
                request,
                client_id,
                body,
                problem(400, "Bad Request", problems[0]),
                None,
                problems,
                [],
            )
        if not allowed(kind, client_id):
            return record(
                request,
                client_id,
                body,
                problem(403, "Forbidden", f"this client may not write {kind}"),
                None,
                [],
                [],
            )
        if kind == "events" and body["programID"] not in vtn.objects["programs"]:
            return record(
                request,
                client_id,
                body,
                problem(400, "Bad Request", f"programID: no program {body['programID']}"),
                None,
                [],
                [],
            )
        if kind in ("programs", "vens"):
            name_key = "programName" if kind == "programs" else "venName"
            clash = [
                o
                for o in vtn.objects[kind].values()
                if o[name_key] == body[name_key] and o["id"] != oid
            ]
            if clash:
                # 409 where the yaml documents it (PUT; POST /programs); 400 for POST /vens,
                # whose responses the yaml lists without 409 (Definition.md has 409).
                status = 400 if kind == "vens" and oid is None else 409
                return record(
                    request,
                    client_id,
                    body,
                    problem(status, "Conflict", f"{name_key} exists"),
                    None,
                    [],
                    [],
                )
        schema = {"$ref": _ref(KINDS[kind][2])}
        if oid is None:
            return answer(request, client_id, body, 201, vtn.create(kind, body, client_id), schema)
        return answer(request, client_id, body, 200, vtn.update(kind, oid, body), schema)

    async def notifiers(request: Request) -> Response:
        client_id, refused = await guard(request)
        if refused is not None:
            return refused
        if vtn.mqtt_uri is None:
            return record(
                request,
                client_id,
                None,
                problem(501, "Not Implemented", "no notifier"),
                None,
                [],
                [],
            )
        # No webhook is ever called by this VTN, whatever the description's "MUST be true".
        data = {
            "WEBHOOK": False,
            "MQTT": {
                "URIS": [vtn.mqtt_uri],
                "serialization": "JSON",
                "authentication": {"method": "ANONYMOUS"},
            },
        }
        return answer(request, client_id, None, 200, data, {"$ref": _ref("notifiersResponse")})

    async def topics(request: Request) -> Response:
        client_id, refused = await guard(request)
        if refused is not None:
            return refused
        kind = request.path_params["kind"]
        if vtn.mqtt_uri is None or kind not in ("programs", "events"):
            return record(
                request,
                client_id,
                None,
                problem(501, "Not Implemented", "no such notifier topics"),
                None,
                [],
                [],
            )
        data = {"topics": {op: f"{kind}/{op.lower()}" for op in ("CREATE", "UPDATE", "DELETE")}}
        data["topics"]["ALL"] = f"{kind}/+"
        return answer(request, client_id, None, 200, data, {"$ref": _ref("notifierTopicsResponse")})

    routes = [
        Route("/auth/server", auth_server, methods=["GET"]),
        Route("/auth/token", auth_token, methods=["POST"]),
        Route("/notifiers", notifiers, methods=["GET"]),
        Route("/notifiers/mqtt/topics/{kind}", topics, methods=["GET"]),
        Route("/notifiers/mqtt/topics/vens/{ven}/{kind}", topics, methods=["GET"]),
    ]
    for kind in KINDS:
        routes.append(Route(f"/{kind}", collection, methods=["GET", "POST"]))
        routes.append(Route(f"/{kind}/{{oid}}", item, methods=["GET", "PUT", "DELETE"]))
    return Starlette(routes=routes)


def _ref(name: str) -> str:
    return f"{spec.DOC_URI}#/components/schemas/{name}"
