"""The `vpp` command line: sim, run, event, replay, demo."""

from __future__ import annotations

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
) -> None:
    """Virtual power plant and demand-response controller."""
    configure_logging(log_level)


@app.command()
def version() -> None:
    """Print the version."""
    from importlib.metadata import version as v

    typer.echo(v("vpp"))


if __name__ == "__main__":  # pragma: no cover
    app()
