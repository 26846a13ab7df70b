"""2.0b over https with mutual TLS against openleadr's VTN: the VEN trusts the VTN's CA
(`ca_file`), shows its client certificate (`cert_file`/`key_file`), and the VTN knows it by
that certificate's fingerprint (openleadr's ven_lookup) on every message after
registration; a VEN with a certificate of another CA gets no connection (one log line, a
retry), and a VEN that does not trust the VTN's CA refuses it."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from devices.clock import WallClock
from tests.openadr2b.tls import make_certificates
from tests.openadr2b.vtn_process import running_vtn
from vpp.grid.openadr2b.link import Oadr2bLink
from vpp.site import OpenAdr2bConfig


async def _ven(url: str, tls: Path, cert: str, ca: str = "ca") -> Oadr2bLink:
    cfg = OpenAdr2bConfig(
        vtn_url=url, ven_name="office-1", poll_s=0.5,
        ca_file=tls / f"{ca}.pem", cert_file=tls / f"{cert}.pem", key_file=tls / f"{cert}.key",
    )  # fmt: skip
    link = Oadr2bLink(cfg, "office-1", WallClock(), levels={1: 50.0}, backoff_max_s=0.5)
    return link


@pytest.mark.timeout(90)
async def test_mutual_tls_with_openleadrs_vtn(openleadr: Path, tmp_path: Path) -> None:
    tls = make_certificates(tmp_path / "tls")
    async with running_vtn(openleadr, poll_s=1, granularity_s=1, back_s=1, tls_dir=tls) as vtn:
        assert vtn.url.startswith("https://127.0.0.1:")
        # Strangers first: another CA's client certificate, or not trusting the VTN's CA.
        for cert, ca in (("stranger", "ca"), ("ven", "other-ca")):
            link = await _ven(vtn.url, tls, cert, ca)
            with structlog.testing.capture_logs() as logs:
                run = asyncio.create_task(link.run())
                for _ in range(100):  # bounded: 10 s
                    if link.vtn_errors >= 2:
                        break
                    await asyncio.sleep(0.1)
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run
                await link.close()
            assert link.vtn_errors >= 2 and link.ven_id is None, (cert, ca)
            assert all(e["event"] != "openadr2b_registered" for e in logs)
        assert not vtn.of("registered")

        link = await _ven(vtn.url, tls, "ven")
        run = asyncio.create_task(link.run())
        try:
            await asyncio.wait_for(link.registered.wait(), 30)
            start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
            vtn.send(
                cmd="add_event", ven_name="office-1", signal_name="SIMPLE", signal_type="level",
                event_id="tls-1",
                intervals=[{"start": start.isoformat(), "duration_s": 900, "value": 1}],
            )  # fmt: skip
            msg = await asyncio.wait_for(link.receive(), 15)
            assert b'"oadr2b-tls-1"' in msg.payload and b'"value":50.0' in msg.payload
            link.send_telemetry({"ts": datetime.now(UTC).isoformat(), "site_import_kw": 321.0})
            await vtn.until(lambda: vtn.of("report"), 20, "a report over mutual TLS")
        finally:
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
            await link.close()
    # The VTN authenticated every message after registration by the certificate.
    assert vtn.of("report")[0]["values"][0][1] == 321.0
    problems = [w for w in vtn.of("warning") if "fingerprint" in w["message"].lower()]
    assert not problems, problems
