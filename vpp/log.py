"""structlog set up once: JSON lines when not on a terminal, readable when on one.

Log lines go to whatever `sys.stderr` is when they are written, not the one at start-up:
a live progress bar (rich) swaps in its own stderr while it runs and prints our lines above
itself, instead of under them. `quiet()` raises the level afterwards (a command's
`--quiet`), whatever loggers were already made.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

_configured = False
_floor = logging.NOTSET
"""Events below this level are dropped (raised by `quiet`)."""


class _CurrentStderr:
    """A file that writes to the `sys.stderr` of the moment."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_LEVELS = {"debug": 10, "info": 20, "msg": 20, "warning": 30, "warn": 30, "error": 40}
_LEVELS |= {"exception": 40, "critical": 50, "fatal": 50}


def _above_floor(_logger: Any, method: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    if _floor and _LEVELS.get(method, logging.CRITICAL) < _floor:
        raise structlog.DropEvent
    return event


def configure_logging(level: str = "INFO", *, json: bool | None = None) -> None:
    """Configure structlog and the stdlib root logger; later calls are no-ops."""
    global _configured
    if _configured:
        return
    _configured = True
    if json is None:
        json = not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            _above_floor,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # Library loggers (pymodbus, aiomqtt) are noisy at INFO; keep warnings.
    handler = logging.StreamHandler(_CurrentStderr())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    # Device failures are reported once by devices.poller; pymodbus would repeat them per retry.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def quiet(level: int = logging.ERROR) -> None:
    """Drop log events below `level` from now on (ours and the libraries')."""
    global _floor
    _floor = level
    logging.getLogger().setLevel(max(logging.getLogger().level, level))
