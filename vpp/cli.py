"""The `vpp` command line: sim, run, event, status, aggregate, replay, demo, check, schema,
version."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from vpp.control.strategy import REGISTRY as STRATEGY_REGISTRY  # names only: no pydantic
from vpp.file_schemas import ConfigFile
from vpp.log import configure_logging
from vpp.log import quiet as quiet_logs
from vpp.scenario_cli import scenario_app

if TYPE_CHECKING:  # vpp.site is imported lazily: the CLI starts fast
    from vpp.site import BrokerConfig

HELP = {"help_option_names": ["-h", "--help"]}
"""`-h` is `--help` on every command (sub-commands inherit their parent's context)."""


class _OneLineErrors(typer.Typer):
    """The `vpp` program: a usage error (an unknown option, a value not among the choices, a
    missing argument) is one line on stderr naming the option, exit 2, as every other error
    of ours; typer's default is a boxed, wrapped panel under the usage."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from typer._click.exceptions import ClickException, NoArgsIsHelpError

        try:
            rv = super().__call__(*args, **{**kwargs, "standalone_mode": False})
        except NoArgsIsHelpError as e:  # the help is printed already
            e.show()
            sys.exit(e.exit_code)
        except ClickException as e:
            msg = " ".join(e.format_message().replace("Value error, ", "").split())
            ctx = getattr(e, "ctx", None)
            hint = f" (see {ctx.command_path} -h)" if ctx is not None else ""
            typer.echo(f"error: {msg}{hint}", err=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


app = _OneLineErrors(
    help="Virtual power plant and demand-response controller for commercial buildings.",
    no_args_is_help=True,
    add_completion=True,
    context_settings=HELP,
)


StrategyName = StrEnum("StrategyName", {name: name for name in STRATEGY_REGISTRY})  # type: ignore[misc]
"""`--strategy`'s choices: the strategy registry's names (a wrong one: exit 2 before any work)."""


def _installed_version() -> str:
    """The installed `vpp` package's version (the status message's `agent_version`)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as v

    try:
        return v("vpp")
    except PackageNotFoundError:
        return "0.1.0"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(_installed_version())
        raise typer.Exit()


@app.callback()
def main(
    _version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the installed version and exit.",
    ),
    log_level: str = typer.Option("INFO", help="Log level: DEBUG, INFO, WARNING, ERROR."),
    json_logs: bool | None = typer.Option(
        None,
        "--json-logs/--console-logs",
        help="Force JSON or console logs (default: JSON when not on a terminal).",
    ),
) -> None:
    """Virtual power plant and demand-response controller."""
    configure_logging(log_level, json=json_logs)


def _load_site_or_exit(path: Path):  # type: ignore[no-untyped-def]
    from vpp.site import SiteError, load_site

    try:
        return load_site(path)
    except SiteError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


async def _until_signalled(run, stop: asyncio.Event) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(stop)


# The broker options `vpp event send` and `vpp status` share.
_BROKER_OPT = typer.Option(
    None,
    "--broker",
    help="mqtt://[USER@]HOST:PORT or mqtts://... (default: the site file's, else "
    "mqtt://127.0.0.1:1883); a cluster's nodes comma-separated, mqtt://H1:P1,H2:P2. No "
    "password here: VPP_MQTT_PASSWORD or the site file's.",
)
_PROTOCOL_OPT = typer.Option(
    None,
    "--mqtt-protocol",
    help="MQTT version: 3.1.1 (default; a NATS broker accepts only it) or 5.",
)
_CA_OPT = typer.Option(None, "--ca-file", help="TLS: the CA certificate(s) to trust.")
_CERT_OPT = typer.Option(None, "--cert-file", help="TLS: the client certificate (mTLS).")
_KEY_OPT = typer.Option(None, "--key-file", help="TLS: the client certificate's key.")
_PREFIX_OPT = typer.Option(None, "--prefix", help="Topic prefix (default: the site file's, vpp).")


@app.command()
def run(
    site_file: Path = typer.Argument(..., help="The site file (YAML)."),
    broker: str | None = typer.Option(
        None,
        help="mqtt://[USER@]HOST:PORT or mqtts://...; overrides the site file's broker (no "
        "password here: broker.password_env, broker.password_file or VPP_MQTT_PASSWORD).",
    ),
    data_dir: Path | None = typer.Option(
        None, help="Where the SQLite store goes (overrides the site file)."
    ),
    strategy: StrategyName = typer.Option(
        StrategyName("optimiser"),
        help="How events are answered (default: optimiser).",
    ),
    http: str | None = typer.Option(
        None,
        help="Serve the status page, JSON API and /metrics on HOST:PORT (e.g. 127.0.0.1:8080; "
        "off by default). Other than loopback needs --http-token-env.",
    ),
    http_token_env: str | None = typer.Option(
        None, help="Environment variable holding the token the page asks for."
    ),
) -> None:
    """Run the agent for a site on the wall clock until SIGINT or SIGTERM: devices, control,
    and demand response (events answered, planned, dispatched and reported)."""
    from devices.clock import WallClock
    from vpp.service import site_agent
    from vpp.site import BrokerConfig

    page = _http_or_exit(http, http_token_env) if http else None
    site = _load_site_or_exit(site_file)
    store_path = data_dir / f"{site.id}.sqlite" if data_dir else None
    try:
        broker_cfg = BrokerConfig.from_url(broker, site.config.broker) if broker else None
        agent = site_agent(
            site, WallClock(), broker=broker_cfg, store_path=store_path, strategy=strategy.value
        )
    except ValueError as e:  # the broker URL, credentials or TLS files: names the field
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    except (OSError, sqlite3.Error) as e:  # the store's folder or file
        key = "store.path" if site.config.store.path else "store.data_dir"
        field = "--data-dir" if data_dir else f"{site_file}: {key}"
        path = store_path or site.config.store.file(site.id)
        typer.echo(f"error: {field}: cannot open the store {path}: {e}", err=True)
        raise typer.Exit(2) from e
    if page is None:
        asyncio.run(_until_signalled(agent.run, asyncio.Event()))
        return
    from vpp.agent_view import AgentView
    from vpp.web.app import create_app
    from vpp.web.server import run_with_page

    sock, token = page
    app_ = create_app(AgentView(agent), agent.clock, token=token)

    async def run_all(stop: asyncio.Event) -> None:
        await run_with_page(agent.run, app_, sock, stop)

    asyncio.run(_until_signalled(run_all, asyncio.Event()))


def _http_or_exit(http: str, token_env: str | None, option: str = "--http"):  # type: ignore[no-untyped-def]
    """The bound socket and token of `--http` (or `--serve`); one line and exit 2 if not."""
    from vpp.web.server import bind, http_token, parse_http

    try:
        addr = parse_http(http, option)
        token = http_token(addr, token_env, option)
        return bind(addr, option), token
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


@app.command()
def sim(
    site_file: Path = typer.Argument(..., help="The site file (YAML) naming the devices."),
    json_out: bool = typer.Option(False, "--json", help="Print the endpoints as one JSON line."),
    broker: str | None = typer.Option(
        None,
        help="mqtt://[USER@]HOST:PORT or mqtts://... for MQTT devices (default: the site "
        "file's broker, with its credentials and TLS files; when nothing listens at its "
        "loopback address, an embedded broker is started there).",
    ),
    any_port: bool = typer.Option(False, help="Let the OS choose every Modbus port."),
    duration: str | None = typer.Option(
        None, help="Stop after this long, ISO 8601 (PT10M; default: run until interrupted)."
    ),
    duration_s: float | None = typer.Option(
        None, hidden=True, help="Deprecated: seconds; use --duration."
    ),
) -> None:
    """Serve a simulated site over Modbus TCP and MQTT on the wall clock."""
    from devices.clock import WallClock
    from vpp.broker import connection
    from vpp.grid.types import parse_duration
    from vpp.simsite import simulated_site
    from vpp.site import BrokerConfig, SiteError

    stop_after_s = duration_s
    if duration_s is not None:
        typer.echo("warning: --duration-s is deprecated: use --duration (ISO 8601)", err=True)
    if duration is not None:
        try:
            stop_after_s = parse_duration(duration).total_seconds()
        except ValueError as e:
            typer.echo(f"error: --duration: {e}", err=True)
            raise typer.Exit(2) from e
    site = _load_site_or_exit(site_file)
    try:
        b = BrokerConfig.from_url(broker, site.config.broker) if broker else site.config.broker
        b = b or BrokerConfig()
        needs_broker = any(
            d.profile_or_none is not None and d.profile_or_none.transport == "mqtt"
            for d in site.devices
        )
        sim_site = simulated_site(
            site,
            WallClock(),
            broker=connection(b) if needs_broker else None,
            any_port=any_port,
        )
    except (SiteError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e

    from vpp.sim_cli import Refused, ensure_broker, print_endpoints

    async def serve(stop: asyncio.Event) -> None:
        async with contextlib.AsyncExitStack() as stack:
            embedded = False
            if needs_broker:
                where = "--broker" if broker else f"{site_file}: broker"
                embedded = await ensure_broker(stack, b, where, may_embed=broker is None)
            try:
                await stack.enter_async_context(sim_site)
            except (OSError, ConnectionError) as e:  # a port taken, a broker gone
                raise Refused(f"{site_file}: {e}") from e
            print_endpoints(site.id, sim_site.endpoints(), json_out, b, needs_broker, embedded)
            if stop_after_s is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), stop_after_s)
            else:
                await stop.wait()

    try:
        asyncio.run(_until_signalled(serve, asyncio.Event()))
    except Refused as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


event_app = typer.Typer(
    help="Send grid events to a site (the operator's side).",
    no_args_is_help=True,
    context_settings=HELP,
)
app.add_typer(event_app, name="event")
app.add_typer(scenario_app, name="scenario")


@event_app.command("send")
def event_send(
    site: str | None = typer.Option(
        None, "--site", help="The site id (topic PREFIX/SITE/events; default: the site file's)."
    ),
    site_file: Path | None = typer.Option(
        None,
        "--site-file",
        help="Take the broker (host, port, credentials, TLS files, prefix) from this site file.",
    ),
    curtail_kw: float | None = typer.Option(None, help="Reduce site import by this many kW."),
    cap_kw: float | None = typer.Option(None, help="Keep site import at or under this many kW."),
    price: float | None = typer.Option(None, help="Energy price per kWh for the intervals."),
    start: str | None = typer.Option(
        None, help="RFC 3339 start with offset (default: now); an event that has ended is refused."
    ),
    duration: str | None = typer.Option(None, help="ISO 8601 duration, e.g. PT2H."),
    interval: str | None = typer.Option(
        None,
        help="Interval length, e.g. PT15M (default: one interval); the last is shorter when "
        "it does not divide --duration.",
    ),
    cancel: bool = typer.Option(False, "--cancel", help="Cancel the event (raise --modification)."),
    event_id: str | None = typer.Option(None, help="Event id (generated when absent)."),
    modification: int = typer.Option(0, help="Modification number."),
    test: bool = typer.Option(False, "--test", help="A test event: answered, never dispatched."),
    file: Path | None = typer.Option(None, "--file", help="Send this JSON file as the event."),
    broker: str | None = _BROKER_OPT,
    ca_file: Path | None = _CA_OPT,
    cert_file: Path | None = _CERT_OPT,
    key_file: Path | None = _KEY_OPT,
    prefix: str | None = _PREFIX_OPT,
    mqtt_protocol: str | None = _PROTOCOL_OPT,
    wait_s: float = typer.Option(
        15.0,
        min=0,
        help="At most this long (s) for the site's answer; returns as soon as it comes.",
    ),
) -> None:
    """Send one event and print the site's responses: `received`, then its answer (`opt_in`,
    `opt_out`, `rejected`, `cancelled`); warns when the site's agent is not online."""
    import json

    from devices.clock import WallClock
    from devices.mqtt_connect import tls_context
    from vpp.broker import connection
    from vpp.grid.client import ANSWERS, build_event, send, uneven_split
    from vpp.grid.observe import STATUS_WAIT_S

    clock = WallClock()
    loaded = _load_site_or_exit(site_file) if site_file is not None else None
    site_id = _site_id_or_exit(site, loaded)
    try:
        base = loaded.config.broker if loaded else None
        b = _event_broker(broker, base, ca_file, cert_file, key_file, prefix, mqtt_protocol)
        settings = connection(b)
        context = tls_context(settings)  # a bad CA or key file: an error here, not "unreachable"
        if file is not None:
            try:
                text = file.read_text()
            except OSError as e:
                raise ValueError(f"--file: cannot read {file}: {e.strerror}") from None
            try:
                message: object = json.loads(text)
            except ValueError as e:
                raise ValueError(f"--file: {file} is not JSON: {e}") from None
        else:
            message = build_event(
                now=clock.now(),
                curtail_kw=curtail_kw,
                cap_kw=cap_kw,
                price=price,
                start=start,
                duration=duration,
                interval=interval,
                cancel=cancel,
                modification=modification,
                event_id=event_id,
                test=test,
            )
            if not cancel and (note := uneven_split(duration or "PT0S", interval)):
                typer.echo(f"note: {note}", err=True)  # allowed by the contract, maybe not meant
    except (ValueError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e

    try:
        sent = asyncio.run(
            send(
                message,  # type: ignore[arg-type]
                site_id=site_id,
                clock=clock,
                broker=settings,
                tls=context or False,
                prefix=b.prefix,
                wait_s=wait_s,
                until=ANSWERS,
                status_wait_s=STATUS_WAIT_S,
            )
        )
    except Exception as e:
        typer.echo(f"error: cannot reach the broker at {settings.addresses}: {e}", err=True)
        raise typer.Exit(1) from e
    if sent.site_status is None or sent.site_status.get("online") is not True:
        state = "has no status on the broker" if sent.site_status is None else "is offline"
        typer.echo(
            f"warning: site {site_id} {state}: no agent runs; an agent with a session on the "
            "broker gets the event when it starts, unless the event has ended by then "
            "(check with vpp status; resend with the same --event-id, never a new one)",
            err=True,
        )
    for r in sent.responses:
        typer.echo(r.to_json().decode())
    if not sent.responses:
        eid = getattr(message, "event_id", None) or (
            message.get("event_id") if isinstance(message, dict) else None
        )
        which = f" (event_id {eid})" if isinstance(eid, str) else ""
        typer.echo(f"no response within {wait_s:g} s{which}", err=True)
        raise typer.Exit(1)


@app.command()
def status(
    site: str | None = typer.Option(
        None, "--site", help="The site id (topics PREFIX/SITE/...; default: the site file's)."
    ),
    site_file: Path | None = typer.Option(
        None,
        "--site-file",
        help="Take the broker (host, port, credentials, TLS files, prefix) from this site file.",
    ),
    broker: str | None = _BROKER_OPT,
    ca_file: Path | None = _CA_OPT,
    cert_file: Path | None = _CERT_OPT,
    key_file: Path | None = _KEY_OPT,
    prefix: str | None = _PREFIX_OPT,
    mqtt_protocol: str | None = _PROTOCOL_OPT,
    wait_s: float = typer.Option(
        10.0, min=0, help="At most this long (s) for the next telemetry of an online site."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print status and telemetry as JSON."),
) -> None:
    """Show a site's retained status (is its agent online?) and its latest telemetry, as
    its broker has them. Exit 0 when the agent is online, 1 when it is offline or has no
    status."""
    import json

    from devices.clock import WallClock
    from devices.mqtt_connect import tls_context
    from vpp.broker import connection
    from vpp.grid.observe import describe, observe_site

    loaded = _load_site_or_exit(site_file) if site_file is not None else None
    site_id = _site_id_or_exit(site, loaded)
    try:
        base = loaded.config.broker if loaded else None
        b = _event_broker(broker, base, ca_file, cert_file, key_file, prefix, mqtt_protocol)
        settings = connection(b)
        context = tls_context(settings)
    except (ValueError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    try:
        view = asyncio.run(
            observe_site(
                site_id,
                clock=WallClock(),
                broker=settings,
                tls=context,
                prefix=b.prefix,
                wait_s=wait_s,
            )
        )
    except Exception as e:
        typer.echo(f"error: cannot reach the broker at {settings.addresses}: {e}", err=True)
        raise typer.Exit(1) from e
    if json_out:
        doc = {"site_id": site_id, "status": view.status, "telemetry": view.telemetry}
        typer.echo(json.dumps(doc))
    else:
        for line in describe(view):
            typer.echo(line)
    if not view.online:
        raise typer.Exit(1)


def _site_id_or_exit(site: str | None, loaded: Any) -> str:
    """`--site`, else the site file's id; one line naming --site when neither or bad."""
    import re

    site_id = site or (loaded.id if loaded else None)
    if site_id is None:
        typer.echo("error: --site: give the site id (or --site-file)", err=True)
        raise typer.Exit(2)
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", site_id):  # the site file's site_id rule
        typer.echo(f"error: --site: {site_id!r} is not a site id (1-64 of A-Za-z0-9._-)", err=True)
        raise typer.Exit(2)
    return site_id


def _event_broker(
    url: str | None,
    base: BrokerConfig | None,
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
    prefix: str | None,
    protocol: str | None,
) -> BrokerConfig:
    """The broker `vpp event send` uses: the site file's (or the defaults), then the URL,
    then the TLS files, prefix and MQTT protocol given as options. ValueError names the
    field."""
    from pydantic import ValidationError

    from vpp.site import BrokerConfig, broker_error

    b = BrokerConfig.from_url(url, base) if url else (base or BrokerConfig())
    updates = {
        "ca_file": ca_file,
        "cert_file": cert_file,
        "key_file": key_file,
        "prefix": prefix,
        "protocol": protocol,
    }
    given = {k: v for k, v in updates.items() if v is not None}
    if not given:
        return b
    try:
        return BrokerConfig.model_validate({**b.model_dump(), **given})
    except ValidationError as e:
        option, _, msg = broker_error(e, "--").partition(": ")
        flag = {"--protocol": "--mqtt-protocol"}.get(option, option.replace("_", "-"))
        raise ValueError(f"{flag}: {msg}") from None


def _require_extra(extra: str, what: str) -> None:
    from vpp.extras import MissingExtra, require

    try:
        require(extra, what)
    except MissingExtra as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e


def _replay(
    scenario_file: Path,
    out: Path,
    strategy: str | None,
    broker: str | None,
    counterfactual: bool,
    events: bool,
    quiet: bool,
    duration: str | None,
    history: Path | None = None,
) -> dict[str, object]:
    _require_extra("replay", "vpp replay")
    from rich.console import Console

    from vpp.replay.progress import ReplayProgress
    from vpp.replay.runner import replay, run_one
    from vpp.replay.scenario import ScenarioError, load_scenario
    from vpp.replay.table import render, summary_table
    from vpp.site import BrokerConfig

    try:
        sc = load_scenario(scenario_file)
        if duration:
            sc = sc.with_duration(duration)
        if broker:
            BrokerConfig.from_url(broker)  # a bad URL, or one with a password: one line
    except (ScenarioError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".vpp-write-test").touch()
        (out / ".vpp-write-test").unlink()
    except OSError as e:
        typer.echo(f"error: --out: cannot write to {out}: {e.strerror}", err=True)
        raise typer.Exit(2) from e
    if history is not None and (events or not history.is_file()):
        why = "only with --no-events" if events else f"no such file: {history}"
        typer.echo(f"error: --history: {why}", err=True)
        raise typer.Exit(2)
    strat = strategy or sc.strategy  # --strategy is a choice; the scenario's is validated
    if quiet:
        quiet_logs()  # only the result, and errors
    label = f"replay {sc.name} ({strat})"
    with ReplayProgress(label, sc.start, sc.tz, sc.duration.total_seconds(), quiet=quiet) as bar:

        async def go() -> dict[str, object]:
            if not events:
                await run_one(
                    sc,
                    out,
                    strategy=strat,
                    broker_url=broker,
                    events=False,
                    progress=bar,
                    history=history,
                )
                return {}
            return await replay(
                sc, out, strategy=strat, broker_url=broker, counterfactual=counterfactual,
                progress=bar,
            )  # fmt: skip

        summary = asyncio.run(go())
    if summary:
        Console().print(render(summary_table(summary)))
        typer.echo(f"outputs in {out}/ (summary.json, plots *.png, messages.jsonl, store.sqlite)")
    return summary


@app.command("replay")
def replay_cmd(
    scenario_file: Path = typer.Argument(..., help="The scenario file (YAML)."),
    out: Path = typer.Option(Path("out/replay"), "--out", help="Output folder."),
    strategy: StrategyName | None = typer.Option(
        None,
        help="How events are answered (default: the scenario's, else optimiser).",
    ),
    compare: StrategyName | None = typer.Option(
        None,
        help="Also replay this strategy; print both.",
    ),
    broker: str | None = typer.Option(
        None,
        help="mqtt://HOST:PORT, or 'mosquitto' to start a Mosquitto of the replay's own "
        "(default: embedded broker). broker_restart_at needs the embedded one or 'mosquitto'.",
    ),
    duration: str | None = typer.Option(None, help="Replay only this long (ISO 8601)."),
    counterfactual: bool = typer.Option(True, help="Also run the site without the events."),
    events: bool = typer.Option(True, help="Send the scenario's events."),
    quiet: bool = typer.Option(
        False, "--quiet", help="Print only the result: no progress, no logs but errors."
    ),
    serve: str | None = typer.Option(
        None,
        help="Then serve the outputs' status page and JSON API on HOST:PORT (e.g. "
        "127.0.0.1:8080) until Ctrl-C. Other than loopback needs --http-token-env.",
    ),
    http_token_env: str | None = typer.Option(
        None, help="Environment variable holding the token the page asks for (--serve)."
    ),
    history: Path | None = typer.Option(
        None,
        hidden=True,
        help="A store holding this scenario's generated history, copied instead of planned "
        "again (the main run's, for its counterfactual process).",
    ),
) -> None:
    """Replay a scenario through the real agent on the virtual clock; write the outputs."""
    page = _http_or_exit(serve, http_token_env, "--serve") if serve else None
    first = _replay(
        scenario_file,
        out,
        strategy and strategy.value,
        broker,
        counterfactual,
        events,
        quiet,
        duration,
        history,
    )
    if compare:
        from rich.console import Console

        from vpp.replay.table import comparison_table, render

        other_out = out.parent / f"{out.name}-{compare.value}"
        other = _replay(
            scenario_file,
            other_out,
            compare.value,
            broker,
            counterfactual,
            events,
            quiet,
            duration,
        )
        Console().print(render(comparison_table(first, other)))
        if first and other:
            from vpp.replay.compare import write_comparison
            from vpp.replay.scenario import load_scenario

            sc = load_scenario(scenario_file)
            sc = sc.with_duration(duration) if duration else sc
            labels = [str(first.get("strategy")), str(other.get("strategy"))]
            if labels[0] == labels[1]:
                labels = [f"{labels[0]} (1)", f"{labels[1]} (2)"]
            paths = write_comparison(sc, [(labels[0], out), (labels[1], other_out)])
            if not quiet:
                typer.echo(f"both on one scale: {paths[0]}, {paths[1]}")
    if page is not None:
        _serve_replay(scenario_file, duration, out, *page)


def _serve_replay(scenario_file: Path, duration: str | None, out: Path, sock, token) -> None:  # type: ignore[no-untyped-def]
    """Serve the status page of a replay's output folder until SIGINT or SIGTERM."""
    from devices.clock import WallClock
    from vpp.replay.scenario import load_scenario
    from vpp.replay.view import ReplayView
    from vpp.web.app import create_app
    from vpp.web.server import serve, url_of

    sc = load_scenario(scenario_file)
    if duration:
        sc = sc.with_duration(duration)
    app_ = create_app(ReplayView(sc, out), WallClock(), token=token)
    typer.echo(f"serving {out}/ at {url_of(sock)} (Ctrl-C to stop)", err=True)

    async def go(stop: asyncio.Event) -> None:
        await serve(app_, sock, stop)

    asyncio.run(_until_signalled(go, asyncio.Event()))


@app.command()
def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", help="Output folder."),
) -> None:
    """Replay the bundled summer office day with its curtail event (embedded broker)."""
    _require_extra("replay", "vpp demo")
    from devices.profile import config_dir

    scenario = config_dir() / "scenarios" / "office-summer-day.yaml"
    _replay(scenario, out, None, None, True, True, False, None)
    typer.echo(f"main plot: {out / 'site_import.png'}")


@app.command()
def check(
    files: list[Path] = typer.Argument(
        ..., help="Site files, scenario files or device profiles (YAML)."
    ),
) -> None:
    """Validate site files, scenarios and device profiles: a one-line summary of each, or its
    errors naming the file and the field (exit 1 on any error)."""
    from vpp.check import CheckError, check_file

    failed = False
    for f in files:
        try:
            typer.echo(check_file(f))
        except CheckError as e:
            typer.echo(f"error: {e}".replace("\n", "\nerror: "), err=True)
            failed = True
    if failed:
        raise typer.Exit(1)


@app.command()
def aggregate(
    fleet_file: Path = typer.Argument(..., help="The fleet file (YAML): district, sites."),
    broker: str | None = typer.Option(
        None, help="mqtt://[USER@]HOST:PORT or mqtts://...; overrides the fleet file's broker."
    ),
    settlement: Path | None = typer.Option(
        None,
        help="Add each event's settlement to this CSV file (default: one file per event, "
        "DATA_DIR/settlement-EVENT.csv).",
    ),
) -> None:
    """Run the district aggregator on the wall clock until SIGINT or SIGTERM: district events
    split over the sites' offers, followed, reported and settled (docs/fleet.md)."""
    from vpp.fleet.command import Refused, aggregator_for

    try:
        agg = aggregator_for(fleet_file, broker, settlement)
    except Refused as e:
        typer.echo(f"error: {e}".replace("\n", "\nerror: "), err=True)
        raise typer.Exit(2) from e
    asyncio.run(_until_signalled(agg.run, asyncio.Event()))


@app.command()
def schema(
    kind: ConfigFile = typer.Argument(
        ..., help="Which file: site, scenario, profile, fleet or fleet-scenario."
    ),
) -> None:
    """Print the JSON Schema of a site file, a scenario, a device profile or a fleet file (as
    docs/schemas/KIND.schema.json)."""
    from vpp.file_schemas import schema_text

    sys.stdout.write(schema_text(kind))


class ExportFormat(StrEnum):
    """`vpp export --format`'s choices."""

    csv = "csv"
    parquet = "parquet"


ExportTable = StrEnum(  # type: ignore[misc]
    "ExportTable",
    {n: n for n in ("energy", "telemetry", "events", "reports", "report_intervals")},
)
"""`vpp export --table`'s choices (vpp.export.tables.TABLES; a test keeps them equal)."""


@app.command("export")
def export_cmd(
    store: Path | None = typer.Option(
        None, "--store", help="The SQLite store (default: the --site file's store)."
    ),
    site_file: Path | None = typer.Option(
        None,
        "--site",
        help="The site file: its time zone (for --from/--to without an offset, and the "
        "files' times), store, telemetry window and each device's power point.",
    ),
    start: str | None = typer.Option(
        None,
        "--from",
        help="ISO 8601 start, e.g. 2026-07-15T00:00+08:00 (no offset: the site's zone; "
        "default: the store's first telemetry).",
    ),
    end: str | None = typer.Option(
        None, "--to", help="ISO 8601 end, excluded (default: after the store's last telemetry)."
    ),
    resolution: str = typer.Option("PT15M", help="Interval length, ISO 8601 (PT1M..P31D)."),
    fmt: ExportFormat = typer.Option(
        ExportFormat.csv, "--format", help="csv, or parquet (needs the export extra)."
    ),
    tables: list[ExportTable] | None = typer.Option(
        None, "--table", help="Only this table (repeat for more; default: all)."
    ),
    out: Path = typer.Option(
        Path("export"), "--out", help="Output folder (one file per table), or - for stdout."
    ),
) -> None:
    """Export the store's energy per device and interval, telemetry, events and reports as
    CSV or Parquet files (docs/operations.md, Exports)."""
    from vpp.export.run import run_export

    if fmt is ExportFormat.parquet:
        from vpp.extras import MissingExtra, require

        try:
            require("export", "--format parquet")
        except MissingExtra as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
    try:
        written = run_export(
            store=store,
            site_file=site_file,
            start=start,
            end=end,
            resolution=resolution,
            fmt=fmt.value,
            tables=[t.value for t in tables] if tables else None,
            out=out,
        )
    except ValueError as e:  # ExportError: names the option
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    for path, rows in written:
        typer.echo(f"{path}: {rows} rows", err=str(out) == "-")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(_installed_version())


if __name__ == "__main__":  # pragma: no cover
    app()


fleet_app = typer.Typer(
    help="District (fleet) tools: replay a fleet scenario.", no_args_is_help=True
)
app.add_typer(fleet_app, name="fleet")


@fleet_app.command("replay")
def fleet_replay(
    scenario: Path = typer.Argument(
        ..., help="The fleet scenario (YAML): district, sites, events."
    ),
    out: Path = typer.Option(..., "--out", help="Output directory (emptied first)."),
    broker: str | None = typer.Option(
        None,
        help="mqtt://HOST:PORT, `mosquitto` or `nats` (a 3-node NATS cluster of the replay's "
        "own: the scenario's broker_down needs it; default: an embedded amqtt broker).",
    ),
    duration: str | None = typer.Option(None, help="Shorten the replay (ISO 8601, e.g. PT3H)."),
) -> None:
    """Replay a district: the aggregator and one real agent per simulated building on one
    virtual clock; summary.json, plots and the settlement CSV in OUT (docs/fleet.md)."""
    from vpp.replay.fleet_command import fleet_replay_command
    from vpp.replay.fleet_scenario import FleetScenarioError
    from vpp.replay.scenario_file import span

    try:
        summary = fleet_replay_command(
            scenario, out, broker, span(duration) if duration is not None else None
        )
    except (FleetScenarioError, ValueError) as e:
        typer.echo(f"error: {e}".replace("\n", "\nerror: "), err=True)
        raise typer.Exit(2) from e
    for ev in summary["events"]:
        typer.echo(
            f"{ev['event_id']}: {ev['signal']} requested {ev['requested_kw']} kW, delivered "
            f"{ev['delivered_kw']} kW ({ev['delivered_ratio']:.0%}; worst interval "
            f"{ev['min_interval_ratio']:.0%})"
        )
    typer.echo(f"wrote {out}/summary.json (wall {summary['wall_s']} s, cpu {summary['cpu_s']} s)")
