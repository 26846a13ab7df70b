"""The site's broker settings (vpp.site.BrokerConfig) → how our MQTT clients connect
(devices.mqtt_connect.MqttSettings): the client id derived from the site id, and the
credentials from the site file or the environment. Every command that connects (`vpp run`,
`vpp sim`, `vpp event send`) goes through `connection`, so all of them authenticate alike.

A password is read here and kept only in MqttSettings (whose repr hides it); it is never
logged, echoed in an error, or taken from a command line.
"""

from __future__ import annotations

import os

from devices.mqtt_connect import MqttSettings
from vpp.site import BrokerConfig

USERNAME_ENV = "VPP_MQTT_USERNAME"
"""The username when the site file gives none."""
PASSWORD_ENV = "VPP_MQTT_PASSWORD"
"""The password when the site file names neither `password_env` nor `password_file`."""


def default_client_id(site_id: str) -> str:
    """The site agent's client id unless the site file sets one: unique per site, so copied
    site files on one broker never share a session. Its device hub adds `-devices`."""
    return f"vpp-{site_id}"


def devices_client_id(client_id: str) -> str:
    """The device hub's client id, next to the agent's."""
    return f"{client_id}-devices"


def credentials(broker: BrokerConfig) -> tuple[str | None, str | None]:
    """(username, password): the site file's, else VPP_MQTT_USERNAME / VPP_MQTT_PASSWORD.
    Raises ValueError naming the field (never the secret)."""
    username = broker.username or os.environ.get(USERNAME_ENV) or None
    password: str | None
    if broker.password_env:
        password = os.environ.get(broker.password_env)
        if password is None:
            raise ValueError(
                f"broker.password_env: the environment variable {broker.password_env} is not set"
            )
    elif broker.password_file:
        try:
            password = broker.password_file.read_text().strip()
        except OSError as e:
            raise ValueError(
                f"broker.password_file: cannot read {broker.password_file}: {e.strerror}"
            ) from None
    else:
        password = os.environ.get(PASSWORD_ENV) or None
    if password is not None and username is None:
        # MQTT sends a password only with a username: without one it would be dropped.
        raise ValueError(f"broker.username: a password needs a username (or {USERNAME_ENV})")
    return username, password


def connection(broker: BrokerConfig, client_id: str | None = None) -> MqttSettings:
    """How to connect to `broker` as `client_id`; ValueError naming the field if the
    credentials cannot be had."""
    username, password = credentials(broker)
    return MqttSettings(
        host=broker.host,
        port=broker.port,
        username=username,
        password=password,
        tls=broker.tls,
        client_id=client_id,
        keepalive_s=broker.keepalive_s,
        ca_file=broker.ca_file,
        cert_file=broker.cert_file,
        key_file=broker.key_file,
        protocol=broker.protocol,
        failover=tuple(broker.nodes()[1:]),
    )
