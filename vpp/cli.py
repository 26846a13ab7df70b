"""The `vpp` command line: sim, run, event, replay, demo."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import typer

from vpp.log import configure_logging

app = typer.Typer(
    help="Virtual power plant and demand-response controller for commercial buildings.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main(
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


@app.command()
def run(
    site_file: Path = typer.Argument(..., help="The site file (YAML)."),
    broker: str | None = typer.Option(
        None, help="mqtt://HOST:PORT or mqtts://HOST:PORT; overrides the site file's broker."
    ),
    data_dir: Path | None = typer.Option(
        None, help="Where the SQLite store goes (overrides the site file)."
    ),
) -> None:
    """Run the agent for a site on the wall clock until SIGINT or SIGTERM."""
    from devices.clock import WallClock
    from vpp.agent import Agent
    from vpp.site import BrokerConfig

    site = _load_site_or_exit(site_file)
    try:
        broker_cfg = BrokerConfig.from_url(broker, site.config.broker) if broker else None
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    store_path = data_dir / f"{site.id}.sqlite" if data_dir else None
    agent = Agent(site, WallClock(), broker=broker_cfg, store_path=store_path)
    asyncio.run(_until_signalled(agent.run, asyncio.Event()))


@app.command()
def sim(
    site_file: Path = typer.Argument(..., help="The site file (YAML) naming the devices."),
    json_out: bool = typer.Option(False, "--json", help="Print the endpoints as one JSON line."),
    broker: str | None = typer.Option(
        None, help="mqtt://HOST:PORT for MQTT devices (default: the site file's broker)."
    ),
    any_port: bool = typer.Option(False, help="Let the OS choose every Modbus port."),
    duration_s: float | None = typer.Option(
        None, help="Stop after this many seconds (default: run until interrupted)."
    ),
) -> None:
    """Serve a simulated site over Modbus TCP and MQTT on the wall clock."""
    import json

    from devices.clock import WallClock
    from vpp.simsite import simulated_site
    from vpp.site import BrokerConfig, SiteError

    site = _load_site_or_exit(site_file)
    try:
        b = BrokerConfig.from_url(broker, site.config.broker) if broker else site.config.broker
        needs_broker = any(d.profile.transport == "mqtt" for d in site.devices)
        sim_site = simulated_site(
            site,
            WallClock(),
            broker=(b.host, b.port) if b and needs_broker else None,
            any_port=any_port,
        )
    except (SiteError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e

    async def serve(stop: asyncio.Event) -> None:
        async with sim_site:
            eps = sim_site.endpoints()
            if json_out:
                doc = [
                    {
                        "id": e.id,
                        "kind": str(e.kind),
                        "transport": e.transport,
                        "host": e.host,
                        "port": e.port,
                        "unit_id": e.unit_id,
                        "profile": e.profile,
                    }
                    for e in eps
                ]
                print(json.dumps({"site_id": site.id, "devices": doc}), flush=True)
            else:
                for e in eps:
                    unit = "-" if e.unit_id is None else e.unit_id
                    print(
                        f"{e.id:16} {e.kind!s:17} {e.transport:6} {e.host}:{e.port:<6} "
                        f"unit {unit!s:4} {e.profile}",
                        flush=True,
                    )
            if duration_s is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), duration_s)
            else:
                await stop.wait()

    asyncio.run(_until_signalled(serve, asyncio.Event()))


@app.command()
def version() -> None:
    """Print the version."""
    from importlib.metadata import version as v

    typer.echo(v("vpp"))


if __name__ == "__main__":  # pragma: no cover
    app()
