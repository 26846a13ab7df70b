"""The optional extras of the `vpp` package and the libraries each brings (pyproject.toml's
`[project.optional-dependencies]`): a command that needs one checks it before any work, so
a site agent installed without it gets one line saying what to install, not a traceback."""

from __future__ import annotations

import importlib.util

EXTRAS: dict[str, tuple[str, ...]] = {
    "replay": ("matplotlib", "amqtt"),  # the plots, the embedded broker
    "export": ("pyarrow",),  # Parquet files
}
"""Extra → the top-level modules it installs."""


class MissingExtra(RuntimeError):
    """A command needs an extra that is not installed; the message says what to install."""


def require(extra: str, what: str) -> None:
    """Raise MissingExtra naming the extra if any of its modules is not importable.
    `what` is the command or option that needs it (`vpp replay`, `--format parquet`)."""
    missing = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtra(
            f"{what} needs the {extra} extra ({', '.join(missing)} not installed): "
            f"pip install 'vpp[{extra}]'"
        )
