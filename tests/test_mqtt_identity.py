"""MQTT identity and secrets (issue 13, points 3 and 5): client ids derived from the site id,
a taken-over session named as such, credentials from the site file or the environment for
every command, no password in argv or output, TLS and mTLS through the site file's files,
and `broker.prefix` checked.

Real Mosquitto brokers (password file, TLS listeners with a CA made by openssl) and real
`vpp run` / `vpp event send` processes where the property is about the command.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiomqtt
import pytest
import yaml
from structlog.testing import capture_logs

from devices.clock import WallClock
from tests.conftest import Broker
from tests.mqtt_brokers import make_pki, mosquitto_with, password_conf, tls_conf
from vpp.site import BrokerConfig, SiteError, load_site

ROOT = Path(__file__).resolve().parent.parent
OFFICE = ROOT / "config" / "sites" / "office.yaml"
SECRET = "s3cret-Pa55"


def _site_file(tmp_path: Path, site_id: str, **broker: object) -> Path:
    """A copy of the bundled office with only the site id (and `broker` keys) changed."""
    doc = yaml.safe_load(OFFICE.read_text())
    doc["site_id"] = site_id
    doc["broker"].update(broker)
    path = tmp_path / f"{site_id}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPP_MQTT_")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


@contextmanager
def _agent(site_file: Path, data_dir: Path, env: dict[str, str], *args: str) -> Iterator[Path]:
    """`vpp run` as a process; its stderr (the log) is kept in a file for the test to read."""
    log = data_dir / f"{site_file.stem}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vpp",
                "run",
                str(site_file),
                "--data-dir",
                str(data_dir),
                *args,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            yield log
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _send(env: dict[str, str], *args: str, wait_s: float = 2) -> subprocess.Popen[str]:
    """`vpp event send` as a process. Nothing serves the office's devices here, so the agent
    never plans and `send` waits all of `wait_s`: the tests need only `received`, which comes
    at once by contract (the flood test holds it to 1 s mid-flood)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vpp",
            "event",
            "send",
            "--curtail-kw",
            "20",
            "--duration",
            "PT30M",
            "--wait-s",
            str(wait_s),
            *args,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _answers(proc: subprocess.Popen[str]) -> tuple[list[dict[str, object]], str]:
    out, err = proc.communicate(timeout=90)
    return [json.loads(line) for line in out.splitlines() if line.strip()], err


async def _online(host: str, port: int, site_id: str, **client: object) -> None:
    """Until the site's retained status says online (it is subscribed to its events)."""
    async with aiomqtt.Client(host, port, **client) as c:  # type: ignore[arg-type]
        await c.subscribe(f"vpp/{site_id}/status", qos=1)
        async for m in c.messages:
            if json.loads(bytes(m.payload)).get("online") is True:  # type: ignore[arg-type]
                return


def _wait_online(host: str, port: int, *sites: str, **client: object) -> None:
    async def all_online() -> None:
        await asyncio.gather(*(_online(host, port, s, **client) for s in sites))

    asyncio.run(asyncio.wait_for(all_online(), 60))


# -- point 3: client ids ------------------------------------------------------------------


def test_two_sites_from_copied_office_files_both_answer_every_event(
    fresh_mosquitto: Broker, tmp_path: Path
) -> None:
    """Two `vpp run` on one broker, site files copied from the office with only the site id
    changed: each answers every event sent to it (with one client id they took each other's
    session and lost the events)."""
    b = fresh_mosquitto
    env = _env()
    one, two = _site_file(tmp_path, "office-1"), _site_file(tmp_path, "office-2")
    with (
        _agent(one, tmp_path, env, "--broker", b.url) as log_one,
        _agent(two, tmp_path, env, "--broker", b.url) as log_two,
    ):
        _wait_online(b.host, b.port, "office-1", "office-2")
        for n in range(3):
            sends = {
                site: _send(env, "--site", site, "--event-id", f"{site}-{n}", "--broker", b.url)
                for site in ("office-1", "office-2")
            }
            for site, proc in sends.items():
                answers, err = _answers(proc)
                assert [a["event_id"] for a in answers[:1]] == [f"{site}-{n}"], (site, err)
                assert answers[0]["status"] == "received"
    # No session was taken over: neither agent lost its connection once.
    for log in (log_one, log_two):
        assert "mqtt_disconnected" not in log.read_text(), log.read_text()[-2000:]


def test_a_client_id_copied_from_another_site_is_refused(tmp_path: Path) -> None:
    """`vpp-<site id>` is that site's default id: a copy that keeps it is a site-file error."""
    path = _site_file(tmp_path, "office-2", client_id="vpp-office-1")
    with pytest.raises(SiteError) as err:
        load_site(path)
    assert "broker.client_id" in str(err.value) and "office-1" in str(err.value)
    # Its own default, or an id of another form, is the site's to choose.
    assert load_site(_site_file(tmp_path, "office-3", client_id="vpp-office-3")).id == "office-3"
    assert load_site(_site_file(tmp_path, "office-4", client_id="bldg-4-agent")).id == "office-4"
    # Without one, the agent's id is derived from the site id, and its device hub's from it.
    from vpp.drivers import mqtt_hub_for
    from vpp.mqtt_link import MqttLink

    site = load_site(_site_file(tmp_path, "office-5"))
    assert site.config.broker is not None
    link = MqttLink(site.config.broker, site.id, WallClock())
    assert link.client_id == "vpp-office-5"
    hub = mqtt_hub_for(site, WallClock(), site.config.broker, link.client_id)
    assert hub is not None and hub.settings.client_id == "vpp-office-5-devices"


async def test_a_session_taken_over_again_and_again_is_logged_as_client_id_in_use(
    fresh_mosquitto: Broker,
) -> None:
    """Another client connecting with the agent's client id takes its session each time: after
    a few such immediate disconnects the link logs an error naming the cause."""
    from vpp.mqtt_link import MqttLink

    b = fresh_mosquitto
    link = MqttLink(
        BrokerConfig(host=b.host, port=b.port, client_id="shared-id"), "s1", WallClock()
    )
    with capture_logs() as logs:
        task = asyncio.create_task(link.run())
        try:
            for _ in range(4):  # bounded: each round one take-over
                await asyncio.wait_for(link.connected.wait(), 20)
                async with aiomqtt.Client(b.host, b.port, identifier="shared-id"):
                    for _ in range(100):  # until the link saw its session go
                        if not link.connected.is_set():
                            break
                        await asyncio.sleep(0.05)
                if any(e["event"] == "mqtt_client_id_in_use" for e in logs):
                    break
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    errors = [e for e in logs if e["event"] == "mqtt_client_id_in_use"]
    assert len(errors) == 1, [e["event"] for e in logs]
    assert errors[0]["log_level"] == "error"
    assert errors[0]["client_id"] == "shared-id"
    assert "another client uses client id 'shared-id'" in errors[0]["cause"]


# -- point 5: credentials, secrets, TLS, prefix ---------------------------------------------


def test_event_send_authenticates_against_a_password_protected_broker(tmp_path: Path) -> None:
    """Mosquitto with a password file and no anonymous clients: the agent takes its password
    from `password_env`, `vpp event send` from the same site file or from VPP_MQTT_*; the
    password shows in no output of either."""
    conf = password_conf(tmp_path, {"office": SECRET})
    with mosquitto_with(tmp_path, conf) as b:
        site = _site_file(
            tmp_path,
            "office-1",
            host=b.host,
            port=b.port,
            username="office",
            password_env="OFFICE_MQTT_PASSWORD",
        )
        env = _env(OFFICE_MQTT_PASSWORD=SECRET)
        with _agent(site, tmp_path, env) as log:
            _wait_online(b.host, b.port, "office-1", username="office", password=SECRET)
            by_file = _send(env, "--site-file", str(site), "--event-id", "pw-1")
            answers, err = _answers(by_file)
            assert [a["status"] for a in answers[:1]] == ["received"], err
            by_env = _send(
                _env(VPP_MQTT_USERNAME="office", VPP_MQTT_PASSWORD=SECRET),
                *("--site", "office-1", "--broker", f"mqtt://{b.host}:{b.port}"),
                *("--event-id", "pw-2"),
            )
            answers, err2 = _answers(by_env)
            assert [a["status"] for a in answers[:1]] == ["received"], err2
            # Without credentials the broker refuses: one line, no traceback.
            anonymous = _send(_env(), "--site", "office-1", "--broker", f"mqtt://{b.host}:{b.port}")
            none, err3 = _answers(anonymous)
            assert none == [] and anonymous.returncode == 1
            assert err3.startswith("error: cannot reach the broker at ") and err3.count("\n") == 1
        for text in (err, err2, err3, log.read_text()):
            assert SECRET not in text


@pytest.mark.parametrize("command", ["run", "event", "replay"])
def test_a_password_in_the_broker_url_is_refused_without_echoing_it(
    command: str, tmp_path: Path
) -> None:
    """argv is visible to every user: `--broker mqtt://u:PASS@...` is a one-line error naming
    the option and where the password goes instead; the password is not echoed."""
    url = f"mqtt://office:{SECRET}@127.0.0.1:1"
    scenario = ROOT / "config" / "scenarios" / "office-summer-day.yaml"
    args = {
        "run": ["run", str(OFFICE), "--data-dir", str(tmp_path), "--broker", url],
        "event": [
            "event",
            "send",
            "--site",
            "office-1",
            "--curtail-kw",
            "5",
            "--duration",
            "PT15M",
            "--broker",
            url,
        ],
        "replay": ["replay", str(scenario), "--out", str(tmp_path), "--quiet", "--broker", url],
    }[command]
    done = subprocess.run(
        [sys.executable, "-m", "vpp", *args], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: --broker:")
    assert "VPP_MQTT_PASSWORD" in done.stderr and "password_file" in done.stderr
    assert SECRET not in done.stderr + done.stdout


def test_credentials_errors_name_the_field_and_never_the_secret(tmp_path: Path) -> None:
    from vpp.broker import connection

    with pytest.raises(ValueError, match=r"broker\.password_env: the environment variable NOPE"):
        connection(BrokerConfig(username="u", password_env="NOPE"))
    with pytest.raises(ValueError, match=r"broker\.password_file: cannot read"):
        connection(BrokerConfig(username="u", password_file=tmp_path / "missing"))
    secret = tmp_path / "pw"
    secret.write_text(SECRET + "\n")
    with pytest.raises(ValueError, match=r"broker\.username: a password needs a username"):
        connection(BrokerConfig(password_file=secret))
    settings = connection(BrokerConfig(username="u", password_file=secret))
    assert settings.password == SECRET and SECRET not in repr(settings)


@pytest.mark.parametrize("prefix", ["vpp/+", "vpp/#", "v\0pp", "", "/vpp"])
def test_a_bad_prefix_is_a_site_file_error_naming_broker_prefix(
    prefix: str, tmp_path: Path
) -> None:
    path = _site_file(tmp_path, "office-1", prefix=prefix)
    with pytest.raises(SiteError) as err:
        load_site(path)
    assert "broker.prefix" in str(err.value) and "\n" not in str(err.value)


def test_event_send_refuses_a_bad_prefix_in_one_line() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vpp",
            "event",
            "send",
            "--site",
            "office-1",
            "--curtail-kw",
            "5",
            "--duration",
            "PT15M",
            "--prefix",
            "vpp/#",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: --prefix:") and done.stderr.count("\n") == 1


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_tls_with_a_self_signed_ca_through_the_site_file(mutual: bool, tmp_path: Path) -> None:
    """A TLS listener with a certificate of our own CA (and, for mTLS, client certificates
    required): the agent connects through `ca_file` (`cert_file`, `key_file`) and answers
    `vpp event send` given the same files; without the CA the handshake fails in one line."""
    pki = make_pki(tmp_path)
    with mosquitto_with(tmp_path, tls_conf(pki, require_certificate=mutual)) as b:
        client_files = {"cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}
        site = _site_file(
            tmp_path,
            "office-1",
            host=b.host,
            port=b.port,
            tls=True,
            ca_file=str(pki.ca),
            **(client_files if mutual else {}),
        )
        env = _env()
        ctx = ssl.create_default_context(cafile=str(pki.ca))
        if mutual:
            ctx.load_cert_chain(pki.client_cert, pki.client_key)
        with _agent(site, tmp_path, env) as log:
            _wait_online(b.host, b.port, "office-1", tls_context=ctx)
            by_file = _send(env, "--site-file", str(site), "--event-id", "tls-1")
            answers, err = _answers(by_file)
            assert [a["status"] for a in answers[:1]] == ["received"], (err, log.read_text())
            options = ["--ca-file", str(pki.ca)]
            if mutual:
                options += ["--cert-file", str(pki.client_cert), "--key-file", str(pki.client_key)]
            url = f"mqtts://{b.host}:{b.port}"
            by_options = _send(env, "--site", "office-1", "--broker", url, *options)
            answers, err = _answers(by_options)
            assert [a["status"] for a in answers[:1]] == ["received"], err
            untrusted = _send(env, "--site", "office-1", "--broker", url, "--wait-s", "2")
            none, err = _answers(untrusted)
            assert none == [] and untrusted.returncode == 1
            assert "CERTIFICATE_VERIFY_FAILED" in err and err.count("\n") == 1


def _documented_acl() -> str:
    """The Mosquitto ACL of docs/site-and-commissioning.md (the block after "Broker ACL")."""
    doc = (ROOT / "docs" / "site-and-commissioning.md").read_text()
    after = doc[doc.index("**Broker ACL.**") :]
    start = after.index("```\n") + 4
    return after[start : after.index("```", start)]


async def _first(
    host: str, port: int, topic: str, user: str, publish: list[tuple[str, str]]
) -> str | None:
    """The first payload `user` reads on `topic` after each (user, payload) of `publish` has
    been published there in order (QoS 1, acknowledged before the next)."""
    async with aiomqtt.Client(host, port, username=user, password=f"pw-{user}") as reader:
        await reader.subscribe(topic, qos=1)
        for writer, payload in publish:
            async with aiomqtt.Client(host, port, username=writer, password=f"pw-{writer}") as w:
                await w.publish(topic.replace("+", "ev1"), payload, qos=1)
        async for m in reader.messages:
            return bytes(m.payload).decode()  # type: ignore[arg-type]
    return None


def test_the_documented_acl_keeps_sites_and_devices_to_their_topics(tmp_path: Path) -> None:
    """The docs' ACL on a real Mosquitto: the agent (user office-1) answers the grid (user
    grid); the agent cannot forge its devices' telemetry, nor another site its responses."""
    (tmp_path / "acl").write_text(_documented_acl())
    users = ("grid", "office-1", "office-1-devices", "office-2")
    conf = password_conf(tmp_path, {u: f"pw-{u}" for u in users})
    with mosquitto_with(tmp_path, conf + f"acl_file {tmp_path / 'acl'}\n") as b:
        site = _site_file(
            tmp_path,
            "office-1",
            host=b.host,
            port=b.port,
            username="office-1",
            password_env="OFFICE_PW",
        )
        with _agent(site, tmp_path, _env(OFFICE_PW="pw-office-1")):
            _wait_online(b.host, b.port, "office-1", username="grid", password="pw-grid")
            grid = _env(VPP_MQTT_USERNAME="grid", VPP_MQTT_PASSWORD="pw-grid")
            url = f"mqtt://{b.host}:{b.port}"
            answers, err = _answers(_send(grid, "--site", "office-1", "--broker", url))
            assert [a["status"] for a in answers[:1]] == ["received"], err

        async def checks() -> list[str | None]:
            telemetry = _first(
                b.host,
                b.port,
                "vpp/office-1/+/telemetry",
                "office-1",
                [("office-1", "forged"), ("office-1-devices", "real")],
            )
            responses = _first(
                b.host,
                b.port,
                "vpp/office-1/responses",
                "grid",
                [("office-2", "forged"), ("office-1", "real")],
            )
            return list(await asyncio.wait_for(asyncio.gather(telemetry, responses), 20))

        assert asyncio.run(checks()) == ["real", "real"]
