"""Certificates for the mutual-TLS test, made with the openssl command line: a CA, the VTN's
server certificate for 127.0.0.1, the VEN's client certificate (and a stranger's, signed by
another CA)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(d: Path, name: str) -> None:
    _run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
         "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=d)  # fmt: skip


def _cert(d: Path, name: str, ca: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext)
    _run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
         "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
    _run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
         "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
         cwd=d)  # fmt: skip


def make_certificates(d: Path) -> Path:
    """ca.pem, vtn.pem/.key (server, IP 127.0.0.1), ven.pem/.key (client, by ca),
    stranger.pem/.key (client, by another CA) in `d`."""
    d.mkdir(parents=True, exist_ok=True)
    _ca(d, "ca")
    _ca(d, "other-ca")
    _cert(d, "vtn", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _cert(d, "ven", "ca", "extendedKeyUsage=clientAuth\n")
    _cert(d, "stranger", "other-ca", "extendedKeyUsage=clientAuth\n")
    return d
