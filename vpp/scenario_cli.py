"""`vpp scenario`: generated buildings and DR days (vpp.replay.generate) as files to replay."""

from __future__ import annotations

from pathlib import Path

import typer

scenario_app = typer.Typer(
    help="Generated buildings and DR days, as a site file and a scenario to replay.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@scenario_app.command("generate")
def generate(
    seed: int = typer.Option(..., "--seed", min=0, help="Which building and day (≥ 0)."),
    out: Path = typer.Option(..., "--out", help="Folder for the site file and the scenario."),
    strategy: str = typer.Option(
        "optimiser", "--strategy", help="The scenario's strategy: optimiser, rules or none."
    ),
    first_event_only: bool = typer.Option(
        False, "--first-event-only", help="Cut the day to its first event (a shorter replay)."
    ),
) -> None:
    """Draw a building (office, hotel, mall, hospital or school; zones, battery, chargers, PV,
    sheddable loads, a time zone and its climate) and its DR events from SEED, and write its
    site file and scenario into OUT (the same seed gives the same files)."""
    from vpp.control.strategy import strategy_named
    from vpp.replay.generate import write

    try:
        strategy_named(strategy)
    except ValueError as e:
        typer.echo(f"error: --{e}", err=True)
        raise typer.Exit(2) from e
    try:
        site, scenario = write(seed, out, strategy=strategy, first_event_only=first_event_only)
    except OSError as e:
        typer.echo(f"error: --out: cannot write {out}: {e.strerror or e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(f"site: {site}")
    typer.echo(f"scenario: {scenario}")
