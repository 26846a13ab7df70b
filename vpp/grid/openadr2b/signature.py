"""OpenADR 2.0b XML signatures (XML-DSig, signxml): we sign what the VEN sends and verify
what the VTN answers.

A signed message is an `oadrPayload` whose `ds:Signature` (a sibling before the
`oadrSignedObject`) references the signed object (`#oadrSignedObject`) and a
`dsp:ReplayProtect` property (a timestamp and a nonce), as openleadr writes and checks them.
A VTN answer is read only from the signed object the signature covers (never from what else
the document holds), after its ReplayProtect is found fresh and not seen before.
"""

from __future__ import annotations

import copy
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml import (
    InvalidCertificate,
    InvalidDigest,
    InvalidInput,
    InvalidSignature,
    SignatureConstructionMethod,
    SignatureMethod,
    XMLSigner,
    XMLVerifier,
)

from vpp.grid.openadr2b.wire import OADR, utc

DSP = "http://openadr.org/oadr-2.0b/2012/07/xmldsig-properties"
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
REPLAY_WINDOW = timedelta(seconds=60)
"""How far a VTN's ReplayProtect timestamp may lie from our clock (either way): clocks of
two hosts differ by a little; a replayed old answer is refused."""
MAX_NONCES = 4096
"""Nonces remembered within the window (bounded: a VTN flooding us cannot grow the set)."""


class SignatureError(ValueError):
    """A signature we cannot make or a VTN answer whose signature fails: one line."""


def _parser() -> etree.XMLParser:
    # The VTN's bytes have passed defusedxml (inbound.read) first; this parser resolves
    # nothing either way.
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def _load_cert(path: Path, field: str) -> tuple[bytes, x509.Certificate]:
    try:
        pem = path.read_bytes()
        return pem, x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError) as e:
        raise ValueError(f"grid.openadr2b.{field}: cannot use {path}: {e}") from None


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class Signer:
    """Signs our messages with the VEN's certificate and its private key (PEM)."""

    cert_pem: bytes
    key_pem: bytes
    method: SignatureMethod

    @classmethod
    def from_files(cls, cert_file: Path, key_file: Path) -> Signer:
        """ValueError naming the site file's field when a file cannot be used or the key is
        not the certificate's."""
        cert_pem, cert = _load_cert(cert_file, "cert_file")
        try:
            key_pem = key_file.read_bytes()
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (OSError, ValueError, TypeError) as e:
            raise ValueError(f"grid.openadr2b.key_file: cannot use {key_file}: {e}") from None
        if isinstance(key, rsa.RSAPrivateKey):
            method = SignatureMethod.RSA_SHA256
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            method = SignatureMethod.ECDSA_SHA256
        else:
            raise ValueError(f"grid.openadr2b.key_file: {key_file}: not an RSA or EC key")
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if public != _spki(cert):
            raise ValueError(
                f"grid.openadr2b.key_file: {key_file} is not the key of cert_file {cert_file}"
            )
        return cls(cert_pem, key_pem, method)

    def sign(self, payload: bytes, now: datetime) -> bytes:
        """`payload` (an oadrPayload of ours) with its ds:Signature, timestamped `now`."""
        root = etree.fromstring(payload, _parser())
        signer = XMLSigner(
            method=SignatureConstructionMethod.detached,
            signature_algorithm=self.method,
            c14n_algorithm=C14N,
        )
        # Inclusive c14n renders the namespaces in scope: the signature declares those of
        # the oadrPayload it goes into, so its SignedInfo reads the same there as here.
        signer.namespaces = {**signer.namespaces, **{k: v for k, v in root.nsmap.items() if k}}
        signature = signer.sign(
            root,
            key=self.key_pem,
            cert=self.cert_pem.decode(),
            reference_uri="#oadrSignedObject",
            signature_properties=_replay_protect(now),
        )
        root.insert(0, signature)  # oadr_20b.xsd: the signature comes first
        out: bytes = etree.tostring(root, encoding="utf-8", xml_declaration=True)
        return out


def _replay_protect(now: datetime) -> etree._Element:
    el = etree.Element(f"{{{DSP}}}ReplayProtect", nsmap={"dsp": DSP})
    etree.SubElement(el, f"{{{DSP}}}timestamp").text = utc(now)
    etree.SubElement(el, f"{{{DSP}}}nonce").text = uuid.uuid4().hex
    return el


class Verifier:
    """Checks the VTN's answers against the VTN's certificate (`vtn_cert_file`)."""

    def __init__(self, cert_pem: bytes) -> None:
        self._cert = x509.load_pem_x509_certificate(cert_pem)
        self._nonces: OrderedDict[str, datetime] = OrderedDict()

    @classmethod
    def from_file(cls, path: Path) -> Verifier:
        """ValueError naming `grid.openadr2b.vtn_cert_file` when it cannot be used."""
        pem, _ = _load_cert(path, "vtn_cert_file")
        return cls(pem)

    def verify(self, payload: bytes, now: datetime) -> bytes:
        """The oadrPayload around exactly the signed object the VTN's signature covers;
        SignatureError (one line) when unsigned, badly signed, signed by another key,
        stale, or replayed."""
        try:
            results = XMLVerifier().verify(
                payload, x509_cert=self._cert, expect_references=2, parser=_parser()
            )
        except (InvalidSignature, InvalidDigest, InvalidCertificate, InvalidInput) as e:
            raise SignatureError(f"signature refused: {_line(e)}") from None
        except (etree.XMLSyntaxError, ValueError) as e:
            raise SignatureError(f"signature unreadable: {_line(e)}") from None
        listed = results if isinstance(results, list) else [results]
        covered = [r.signed_xml for r in listed if r.signed_xml is not None]
        signed = [el for el in covered if _local(el) == "oadrSignedObject"]
        props = [el for el in covered if el.find(f".//{{{DSP}}}nonce") is not None]
        if len(signed) != 1 or len(props) != 1:
            raise SignatureError(
                "signature refused: it covers no oadrSignedObject and ReplayProtect"
            )
        self._replay_check(props[0], now)
        root = etree.Element(f"{{{OADR}}}oadrPayload", nsmap={"oadr": OADR})
        root.append(copy.deepcopy(signed[0]))
        out: bytes = etree.tostring(root, encoding="utf-8")
        return out

    def _replay_check(self, props: etree._Element, now: datetime) -> None:
        stamp = props.findtext(f".//{{{DSP}}}timestamp")
        nonce = props.findtext(f".//{{{DSP}}}nonce")
        try:
            when = datetime.fromisoformat((stamp or "").strip())
        except ValueError:
            when = None
        if when is None or when.tzinfo is None or not nonce:
            raise SignatureError("signature refused: ReplayProtect has no timestamp or nonce")
        if abs(when - now) > REPLAY_WINDOW:
            raise SignatureError(f"signature refused: ReplayProtect timestamp {stamp} is stale")
        for old, seen in list(self._nonces.items()):
            if seen < now - REPLAY_WINDOW or len(self._nonces) > MAX_NONCES:
                del self._nonces[old]
        if nonce in self._nonces:
            raise SignatureError("signature refused: a replayed message (nonce seen before)")
        self._nonces[nonce] = now


def _line(e: Exception) -> str:
    return " ".join(str(e).split()).rstrip(": ") or e.__class__.__name__


def _local(el: etree._Element) -> str:
    return str(el.tag).rsplit("}", 1)[-1]
