"""Mosquitto brokers that need more than the shared fixture's anonymous listener: password
authentication and TLS (a self-signed CA made with openssl), for the identity and
credential tests."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import Broker, _wait_listening, free_port


@contextmanager
def mosquitto_with(workdir: Path, conf: str) -> Iterator[Broker]:
    """A Mosquitto on a free loopback port with `conf` after the `listener` line."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    path = workdir / f"mosquitto-{port}.conf"
    # Run as ourselves: as root Mosquitto would drop to its own user, who cannot read the
    # password file or keys in the test's private temporary folder.
    me = pwd.getpwuid(os.geteuid()).pw_name
    path.write_text(
        f"listener {port} 127.0.0.1\nuser {me}\npersistence false\nlog_type error\n{conf}"
    )
    proc = subprocess.Popen([exe, "-c", str(path)], stdout=subprocess.DEVNULL)
    try:
        _wait_listening(port)
        yield Broker("127.0.0.1", port, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def password_conf(workdir: Path, users: dict[str, str]) -> str:
    """Mosquitto settings for password authentication only (no anonymous clients)."""
    passwd = workdir / "passwd"
    for i, (user, password) in enumerate(users.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run(
            ["mosquitto_passwd", *create, "-b", str(passwd), user, password],
            check=True,
            capture_output=True,
        )
    return f"allow_anonymous false\npassword_file {passwd}\n"


@dataclass(frozen=True)
class Pki:
    """A self-signed CA, a server certificate for 127.0.0.1 and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_pki(workdir: Path) -> Pki:
    """Keys and certificates made with the openssl command (no Python crypto package)."""
    d = workdir
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=vpp test CA", "-keyout", d / "ca.key", "-out", d / "ca.pem")  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", d / f"{name}.key", "-out", d / f"{name}.csr")  # fmt: skip
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", d / f"{name}.csr", "-CA", d / "ca.pem",
                 "-CAkey", d / "ca.key", "-CAcreateserial", "-days", "2",
                 "-extfile", d / f"{name}.ext", "-out", d / f"{name}.pem")  # fmt: skip
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key")


def tls_conf(pki: Pki, *, require_certificate: bool) -> str:
    """Mosquitto settings for a TLS listener (mTLS with `require_certificate`)."""
    return (
        "allow_anonymous true\n"
        f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
        f"require_certificate {'true' if require_certificate else 'false'}\n"
    )
