"""2.0b XML signatures: against openleadr's real VTN (https with mutual TLS, it signs its
answers with its own certificate and verifies ours against the fingerprint it has for us),
registration, an event, our optIn and a report go through signed both ways; a VEN that
signs with another key, or not at all, is refused by the VTN. Against a hostile VTN
(tests/openadr2b/hostile.py), answers unsigned, signed by another key, tampered with after
signing or replayed are refused by our VEN, one log line each, and the link (and the whole
agent, its native contract working) keeps going."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from devices.clock import WallClock
from tests.conftest import Broker
from tests.grid.live import agent_for, night_timezone, sim_for, small_site_data, watcher
from tests.openadr2b import hostile as h
from tests.openadr2b.ready import agent_ready
from tests.openadr2b.tls import make_certificates
from tests.openadr2b.vtn_process import running_vtn
from vpp.grid.client import build_event
from vpp.grid.fanout import FanoutLink
from vpp.grid.messages import Response
from vpp.grid.openadr2b.link import Oadr2bLink
from vpp.grid.openadr2b.signature import Signer
from vpp.site import BrokerConfig, OpenAdr2bConfig, parse_site


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certificates(tmp_path_factory.mktemp("pki"))


def _config(url: str, pki: Path, **kw: object) -> OpenAdr2bConfig:
    return OpenAdr2bConfig(
        vtn_url=url, ven_name="office-1", poll_s=0.5, ca_file=pki / "ca.pem",
        cert_file=pki / "ven.pem", key_file=pki / "ven.key", **kw,  # type: ignore[arg-type]
    )  # fmt: skip


async def _stop(run: asyncio.Task[None], link: Oadr2bLink) -> None:
    run.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await run
    await link.close()


@pytest.mark.timeout(120)
async def test_signed_both_ways_with_openleadrs_vtn(openleadr: Path, pki: Path) -> None:
    async with running_vtn(
        openleadr, poll_s=1, granularity_s=1, back_s=1, tls_dir=pki, sign=True
    ) as vtn:
        # Refused by the VTN: signed with a key it does not know us by, or not signed.
        # Its refusal: an oadrResponse (signed) in place of the answer; for a message with
        # no signature to check, openleadr fails with HTTP 500.
        stranger = Signer.from_files(pki / "stranger.pem", pki / "stranger.key")
        for signer, sign, refusal in (
            (stranger, True, "answered with oadrResponse"),
            (None, False, "HTTP 500"),
        ):
            cfg = _config(vtn.url, pki, sign=sign, vtn_cert_file=pki / "vtn.pem")
            link = Oadr2bLink(
                cfg, "office-1", WallClock(), levels={1: 50.0}, signer=signer, backoff_max_s=0.3
            )
            with structlog.testing.capture_logs() as logs:
                run = asyncio.create_task(link.run())
                for _ in range(150):  # bounded: 15 s
                    if link.vtn_errors >= 2:
                        break
                    await asyncio.sleep(0.1)
                await _stop(run, link)
            assert link.vtn_errors >= 2 and not link.registered.is_set(), refusal
            errors = [e["error"] for e in logs if e["event"] == "openadr2b_vtn_error"]
            assert errors and all(refusal in e for e in errors), errors
            assert not any("signature refused" in e for e in errors), errors
        assert not vtn.of("report_offer")  # nothing after registration got through

        cfg = _config(vtn.url, pki, sign=True, vtn_cert_file=pki / "vtn.pem")
        link = Oadr2bLink(cfg, "office-1", WallClock(), levels={1: 50.0})
        with structlog.testing.capture_logs() as logs:
            run = asyncio.create_task(link.run())
            try:
                await asyncio.wait_for(link.registered.wait(), 30)
                start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
                vtn.send(
                    cmd="add_event", ven_name="office-1", signal_name="SIMPLE",
                    signal_type="level", event_id="sig-1",
                    intervals=[{"start": start.isoformat(), "duration_s": 900, "value": 1}],
                )  # fmt: skip
                msg = await asyncio.wait_for(link.receive(), 15)
                event = json.loads(msg.payload)
                assert event["event_id"] == "oadr2b-sig-1"
                assert event["intervals"][0]["value"] == 50.0
                link.send_response(
                    Response(
                        event_id="oadr2b-sig-1",
                        modification=event["modification"],
                        status="opt_in",
                        ts=datetime.now(UTC),
                    )
                )
                await vtn.until(lambda: vtn.of("created_event"), 20, "our signed optIn")
                link.send_telemetry({"ts": datetime.now(UTC).isoformat(), "site_import_kw": 321.0})
                await vtn.until(lambda: vtn.of("report"), 20, "a signed report")
            finally:
                await _stop(run, link)
    assert link.vtn_errors == 0, [e for e in logs if e["event"] == "openadr2b_vtn_error"]
    answer = vtn.of("created_event")[0]
    assert (answer["event_id"], answer["opt_type"]) == ("sig-1", "optIn")
    assert vtn.of("report")[0]["values"][0][1] == 321.0
    # The VTN checked every signature of ours after registration and found none wrong.
    assert vtn.of("report_offer")
    problems = [w for w in vtn.of("warning") if "signature" in w["message"].lower()]
    assert not problems, problems


@pytest.mark.timeout(60)
async def test_unsigned_tampered_foreign_and_replayed_answers_are_refused(pki: Path) -> None:
    vtn_signer = Signer.from_files(pki / "vtn.pem", pki / "vtn.key")
    stranger = Signer.from_files(pki / "stranger.pem", pki / "stranger.key")

    def signed(body: bytes, by: Signer = vtn_signer) -> bytes:
        return by.sign(body, datetime.now(UTC))

    vtn = h.HostileVtn(
        fallback=h.Answer(200, h.ok_response()),
        fallbacks={
            "EiRegisterParty": h.Answer(200, h.registered()),
            "EiReport": h.Answer(200, h.registered_report()),
        },
        fresh=signed,
    )
    tampered = signed(h.registered()).replace(b"ven-h", b"ven-x")
    vtn.then(
        "EiRegisterParty",
        h.Answer(200, h.registered()),  # unsigned
        h.Answer(200, signed(h.registered(), stranger)),  # signed by another key
        h.Answer(200, tampered),  # changed after signing
    )
    start = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    vtn.then("EiEvent", h.Answer(200, signed(h.distribute(h.event_xml("good", "0", start, "25")))))
    once = signed(h.ok_response())
    vtn.then("OadrPoll", h.Answer(200, once), h.Answer(200, once))  # the second is a replay
    async with vtn.running():
        cfg = OpenAdr2bConfig(
            vtn_url=vtn.url, ven_name="office-1", poll_s=0.2, vtn_cert_file=pki / "vtn.pem"
        )
        link = Oadr2bLink(
            cfg, "office-1", WallClock(), levels={}, backoff_min_s=0.01, backoff_max_s=0.05
        )
        with structlog.testing.capture_logs() as logs:
            run = asyncio.create_task(link.run())
            try:
                msg = await asyncio.wait_for(link.receive(), 20)
                assert json.loads(msg.payload)["event_id"] == "oadr2b-good"
                for _ in range(200):  # bounded: 10 s
                    if link.vtn_errors >= 4:
                        break
                    await asyncio.sleep(0.05)
                polls = [s for s, _ in vtn.requests].count("OadrPoll")
                for _ in range(200):  # bounded: 10 s, polling on after the replay
                    if [s for s, _ in vtn.requests].count("OadrPoll") > polls + 1:
                        break
                    await asyncio.sleep(0.05)
                assert not run.done()
            finally:
                await _stop(run, link)
    assert link.ven_id == "ven-h"  # never the tampered ven-x
    errors = [e["error"] for e in logs if e["event"] == "openadr2b_vtn_error"]
    assert len(errors) == link.vtn_errors == 4, errors
    assert all("signature refused" in e and "\n" not in e for e in errors), errors
    assert "Expected to find XML element Signature" in errors[0]
    assert "Signature verification failed" in errors[1]  # another key
    assert "Digest mismatch" in errors[2]  # tampered with
    assert "replayed" in errors[3] and errors[3].startswith("OadrPoll")
    assert [s for s, _ in vtn.requests].count("OadrPoll") >= polls + 2


def test_signing_options_are_checked_at_start(pki: Path, tmp_path: Path) -> None:
    url = "http://127.0.0.1:1/OpenADR2/Simple/2.0b"  # http: the TLS files are not read
    with pytest.raises(ValueError, match="sign: true needs cert_file and key_file"):
        OpenAdr2bConfig(vtn_url=url, ven_name="v", sign=True)  # type: ignore[arg-type]
    cases = {
        "vtn_cert_file": {"vtn_cert_file": tmp_path / "nope.pem"},
        "key_file": {"sign": True, "key_file": pki / "stranger.key"},
    }
    for field, change in cases.items():
        cfg = _config(url, pki).model_copy(update=change)
        with pytest.raises(ValueError, match=rf"^grid\.openadr2b\.{field}: "):
            Oadr2bLink(cfg, "office-1", WallClock(), levels={})
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    cfg = _config(url, pki).model_copy(update={"vtn_cert_file": bad})
    with pytest.raises(ValueError, match=r"^grid\.openadr2b\.vtn_cert_file: cannot use .*bad"):
        Oadr2bLink(cfg, "office-1", WallClock(), levels={})


@pytest.mark.timeout(90)
async def test_the_agent_goes_on_while_the_vtns_answers_are_refused(
    mosquitto: Broker, tmp_path: Path, pki: Path
) -> None:
    """The whole agent, its VEN trusting only the VTN's certificate, against a VTN whose
    answers are unsigned or tampered with: each refused, and the native contract works."""
    clock = WallClock()
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    vtn_signer = Signer.from_files(pki / "vtn.pem", pki / "vtn.key")
    tampered = vtn_signer.sign(h.registered(), datetime.now(UTC)).replace(b"ven-h", b"ven-x")
    vtn = h.HostileVtn(fallbacks={"EiRegisterParty": h.Answer(200, h.registered())})
    vtn.then("EiRegisterParty", h.Answer(200, tampered))
    data = small_site_data(night_timezone(datetime.now(UTC), 14))
    async with vtn.running():
        data["grid"] = {
            "openadr2b": {
                "vtn_url": vtn.url, "ven_name": "live-1", "poll_s": 1,
                "vtn_cert_file": str(pki / "vtn.pem"),
            }
        }  # fmt: skip
        site = parse_site(data, tmp_path / "site.yaml")
        async with sim_for(site, clock, broker) as sim, watcher(broker, clock) as grid:
            agent, dr = agent_for(site, sim, clock, broker, tmp_path / "s.sqlite")
            assert isinstance(agent.link, FanoutLink)
            ven = agent.link.links["openadr2b"]
            assert isinstance(ven, Oadr2bLink)
            stop = asyncio.Event()
            with structlog.testing.capture_logs() as logs:
                run = asyncio.create_task(agent.run(stop))
                try:
                    await agent_ready(agent, dr)
                    now = datetime.now(UTC)
                    event = build_event(
                        now=now, curtail_kw=30, start=now + timedelta(minutes=5),
                        duration="PT30M", interval="PT15M", event_id="native-1",
                    )  # fmt: skip
                    await grid.send(event.to_json())
                    await grid.until(
                        lambda: grid.statuses("native-1")[:2] == ["received", "opt_in"], 30
                    )
                    await grid.until(lambda: ven.vtn_errors >= 3, 30)
                    assert not run.done()
                finally:
                    stop.set()
                    await asyncio.wait_for(run, 30)
    assert ven.ven_id is None  # neither the tampered nor the unsigned answer was taken
    errors = [e["error"] for e in logs if e["event"] == "openadr2b_vtn_error"]
    assert errors[0].startswith("EiRegisterParty: signature refused: Digest mismatch")
    assert all("signature refused" in e for e in errors), errors
