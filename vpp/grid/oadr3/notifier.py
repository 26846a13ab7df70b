"""The VTN's MQTT notifier (openadr3.yaml `/notifiers`): where the VTN offers one, the VEN
subscribes to its event topics and polls as soon as a notification arrives, instead of
waiting for the next `poll_s`. The notification only wakes the poll (which reads, checks and
diffs the events as always), so a lost, late or malformed notification costs at most one
poll period. Anonymous and OAuth2 bearer-token brokers are supported; a certificate broker
is not (logged: polling goes on)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

import aiomqtt
import structlog
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from devices.clock import Clock
from vpp.grid.oadr3.client import VtnClient
from vpp.grid.oadr3.errors import VtnError

log = structlog.get_logger(__name__)


class _Read(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Auth(_Read):
    method: StrictStr
    username: StrictStr | None = None


class _Mqtt(_Read):
    URIS: list[StrictStr]
    serialization: StrictStr
    authentication: _Auth


class _Notifiers(_Read):
    MQTT: _Mqtt | None = None


class _Topics(_Read):
    CREATE: StrictStr | None = None
    UPDATE: StrictStr
    DELETE: StrictStr
    ALL: StrictStr | None = None


class _TopicsResponse(_Read):
    topics: _Topics


@dataclass(frozen=True)
class MqttNotifier:
    """A broker to subscribe to and the topics of event operations."""

    host: str
    port: int
    tls: bool
    username: str | None
    use_token: bool
    topics: list[str]


async def discover(client: VtnClient, ven_id: str | None) -> MqttNotifier | None:
    """The VTN's MQTT notifier for events, or None when it offers none we can use."""
    try:
        offered = _Notifiers.model_validate(await client.request("GET", "/notifiers"))
    except (VtnError, ValidationError) as e:
        log.info("openadr3_no_notifier", reason=str(e).splitlines()[0][:200])
        return None
    mqtt = offered.MQTT
    if mqtt is None or not mqtt.URIS:
        return None
    method = mqtt.authentication.method
    if method not in ("ANONYMOUS", "OAUTH2_BEARER_TOKEN"):
        log.warning("openadr3_notifier_unsupported", authentication=method)
        return None
    uri = urlparse(mqtt.URIS[0])
    if uri.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not uri.hostname:
        log.warning("openadr3_notifier_unsupported", uri=mqtt.URIS[0])
        return None
    tls = uri.scheme in ("mqtts", "ssl")
    path = "/notifiers/mqtt/topics/events"
    if ven_id is not None:
        path = f"/notifiers/mqtt/topics/vens/{ven_id}/events"
    try:
        found = _TopicsResponse.model_validate(await client.request("GET", path)).topics
    except (VtnError, ValidationError):
        found = _TopicsResponse.model_validate(
            await client.request("GET", "/notifiers/mqtt/topics/events")
        ).topics
    topics = [found.ALL] if found.ALL else [found.UPDATE, found.DELETE]
    if not found.ALL and found.CREATE:
        topics.insert(0, found.CREATE)
    username = mqtt.authentication.username
    if username == "{clientID}":
        username = client.tokens.client_id
    return MqttNotifier(
        uri.hostname,
        uri.port or (8883 if tls else 1883),
        tls,
        username,
        method == "OAUTH2_BEARER_TOKEN",
        topics,
    )


async def listen(
    notifier: MqttNotifier, client: VtnClient, clock: Clock, wake: Callable[[], None]
) -> None:
    """Subscribe and call `wake()` on every notification, until the connection drops
    (aiomqtt.MqttError)."""
    password = await client.tokens.token(client) if notifier.use_token else None
    async with contextlib.AsyncExitStack() as stack:
        async with clock.hold():  # time stands still while we connect and subscribe
            mqtt = await stack.enter_async_context(
                aiomqtt.Client(
                    notifier.host,
                    notifier.port,
                    username=notifier.username,
                    password=password,
                    tls_params=aiomqtt.TLSParameters() if notifier.tls else None,
                    timeout=10,
                )
            )
            for topic in notifier.topics:
                await mqtt.subscribe(topic, qos=1)
        log.info(
            "openadr3_notifier_subscribed",
            broker=f"{notifier.host}:{notifier.port}",
            topics=notifier.topics,
        )
        async for _ in mqtt.messages:
            wake()
