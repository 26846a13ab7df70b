"""A real OpenADR 2.0b VTN for the tests: openleadr 0.5.36's OpenADRServer, run in its own
venv as a separate process (`.venv-openleadr/bin/python tests/openadr2b/vtn.py --port P`).

It registers any VEN (one venID per VEN name), requests the TELEMETRY_USAGE report a VEN
offers (granularity and report-back period from the command line), and records on stdout,
one JSON line each, what happens: `ready`, `registered`, `report_offer`, `created_event`
(every eventResponse of every oadrCreatedEvent, with its description), `report` (values of
an oadrUpdateReport that reached its callback), `added`/`cancelled`/`modified` (with
`t`, the wall time), and `warning` (openleadr's own warnings: a schema-invalid message
from the VEN shows up here). Commands arrive on stdin as JSON lines:
`{"cmd": "add_event", ...}`, `{"cmd": "cancel", "event_id": ...}`,
`{"cmd": "modify", "event_id": ..., "intervals": [...]}`.
"""

import argparse
import asyncio
import json
import logging
import sys
import time
from datetime import UTC, datetime, timedelta

from openleadr import OpenADRServer, hooks, objects, utils

VEN_IDS: dict[str, str] = {}


def emit(rec: str, **fields: object) -> None:
    print(json.dumps({"rec": rec, "t": time.time(), **fields}, default=str), flush=True)


class Warnings(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        emit("warning", message=record.getMessage()[:500])


def on_create_party_registration(info: dict) -> tuple[str, str]:
    name = info["ven_name"]
    ven_id = VEN_IDS.setdefault(name, f"ven-{len(VEN_IDS) + 1}-{name}")
    emit("registered", ven_name=name, ven_id=ven_id, sent_ven_id=info.get("ven_id"))
    return ven_id, f"reg-{ven_id}"


def make_ven_lookup(ven_cert_file: str):
    with open(ven_cert_file) as f:
        fingerprint = utils.certificate_fingerprint(f.read())

    def ven_lookup(ven_id: str) -> dict | None:
        for name, known in VEN_IDS.items():
            if known == ven_id:
                return {
                    "ven_id": ven_id,
                    "ven_name": name,
                    "fingerprint": fingerprint,
                    "registration_id": f"reg-{ven_id}",
                }
        return None

    return ven_lookup


def make_on_register_report(granularity: timedelta, back: timedelta):
    def on_register_report(
        ven_id, resource_id, measurement, unit, scale, min_sampling_interval, max_sampling_interval
    ):
        emit(
            "report_offer",
            ven_id=ven_id,
            resource_id=resource_id,
            measurement=measurement,
            unit=unit,
            scale=scale,
        )

        def on_values(values):
            emit("report", ven_id=ven_id, values=[[v[0], v[1]] for v in values])

        return on_values, granularity, back

    return on_register_report


async def before_handle(message_type: str, payload: dict) -> None:
    if message_type == "oadrCreatedEvent":
        for r in payload.get("event_responses", []):
            emit(
                "created_event",
                ven_id=payload.get("ven_id"),
                event_id=r.get("event_id"),
                modification=r.get("modification_number"),
                opt_type=r.get("opt_type"),
                code=r.get("response_code"),
                description=r.get("response_description"),
            )
    elif message_type == "oadrPoll":
        emit("poll", ven_id=payload.get("ven_id"))


def intervals_of(spec: list[dict]) -> list[objects.Interval]:
    return [
        objects.Interval(
            dtstart=datetime.fromisoformat(i["start"]).astimezone(UTC),
            duration=timedelta(seconds=i["duration_s"]),
            signal_payload=i["value"],
        )
        for i in spec
    ]


def on_opt(ven_id: str, event_id: str, opt_type: str) -> None:
    emit("opt_callback", ven_id=ven_id, event_id=event_id, opt_type=opt_type)


def command(server: OpenADRServer, cmd: dict) -> None:
    ven_id = VEN_IDS.get(cmd.get("ven_name", ""), cmd.get("ven_id"))
    if cmd["cmd"] == "add_event":
        event_id = server.add_event(
            ven_id=ven_id,
            signal_name=cmd["signal_name"],
            signal_type=cmd["signal_type"],
            intervals=intervals_of(cmd["intervals"]),
            callback=on_opt,
            event_id=cmd.get("event_id"),
            market_context=cmd.get("market_context", "oadr://test"),
        )
        emit("added", event_id=event_id, ven_id=ven_id)
    elif cmd["cmd"] == "cancel":
        server.cancel_event(ven_id, cmd["event_id"])
        emit("cancelled", event_id=cmd["event_id"])
    elif cmd["cmd"] == "modify":
        event = utils.find_by(server.events[ven_id], "event_descriptor.event_id", cmd["event_id"])
        ivs = intervals_of(cmd["intervals"])
        event.event_signals[0].intervals = ivs
        event.active_period = utils.get_active_period_from_intervals(ivs, False)
        mod = utils.increment_event_modification_number(event)
        server.events_updated[ven_id] = True
        emit("modified", event_id=cmd["event_id"], modification=mod)


async def read_commands(server: OpenADRServer) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        try:
            command(server, json.loads(line))
        except Exception as e:  # a bad command is the test's bug: say so, keep serving
            emit("command_failed", error=f"{e.__class__.__name__}: {e}")
    # stdin closed: the test is gone.
    raise SystemExit(0)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--poll-s", type=float, default=10.0)
    p.add_argument("--granularity-s", type=float, default=5.0)
    p.add_argument("--back-s", type=float, default=10.0)
    p.add_argument("--tls-dir", help="https with mutual TLS: ca.pem, vtn.pem/.key, ven.pem")
    p.add_argument(
        "--sign", action="store_true", help="XML signatures: sign with vtn.pem/.key, verify VENs'"
    )
    args = p.parse_args()
    logging.getLogger("openleadr").addHandler(Warnings(level=logging.WARNING))
    tls: dict = {}
    if args.tls_dir:
        d = args.tls_dir
        tls = {
            "http_cert": f"{d}/vtn.pem",
            "http_key": f"{d}/vtn.key",
            "http_ca_file": f"{d}/ca.pem",
            # The VEN is known by its certificate's fingerprint (and, with --sign, its
            # messages' signatures must be by that certificate).
            "ven_lookup": make_ven_lookup(f"{d}/ven.pem"),
            "verify_message_signatures": args.sign,
        }
        if args.sign:
            tls.update(cert=f"{d}/vtn.pem", key=f"{d}/vtn.key")
    server = OpenADRServer(
        vtn_id="test-vtn",
        http_port=args.port,
        http_host="127.0.0.1",
        requested_poll_freq=timedelta(seconds=args.poll_s),
        **tls,
    )
    server.add_handler("on_create_party_registration", on_create_party_registration)
    server.add_handler(
        "on_register_report",
        make_on_register_report(
            timedelta(seconds=args.granularity_s), timedelta(seconds=args.back_s)
        ),
    )
    hooks.register("before_handle", before_handle)
    await server.run()
    emit("ready", port=args.port)
    try:
        await read_commands(server)
    finally:
        await server.stop()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except SystemExit:
        pass
