"""structlog set up once: JSON lines when not on a terminal, readable when on one.

Log lines go to the stderr of start-up, or for a while to another file (`logs_to`): a live
progress bar's, which prints them above itself instead of being written over. Never to the
`sys.stderr` of the moment: Pyomo swaps it for a temporary file while HiGHS runs (in a
worker thread, live), and other threads' lines would vanish there. `quiet()` raises the
level afterwards (a command's `--quiet`), whatever loggers were already made.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, Protocol

import structlog

_configured = False
_floor = logging.NOTSET
"""Events below this level are dropped (raised by `quiet`)."""


class Writable(Protocol):
    """What log lines can go to: a text file, or a progress bar's proxy."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class _Sink:
    """The file log lines go to (see the module's docstring)."""

    def __init__(self) -> None:
        self.file: Writable = sys.stderr

    def write(self, text: str) -> int:
        return self.file.write(text)

    def flush(self) -> None:
        self.file.flush()


_SINK = _Sink()


@contextmanager
def logs_to(file: Writable) -> Iterator[None]:
    """Send log lines (ours and the libraries') to `file` for the time of the block."""
    before, _SINK.file = _SINK.file, file
    try:
        yield
    finally:
        _SINK.file = before


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
    _SINK.file = sys.stderr  # the one of start-up (a test's capture, say)
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
        logger_factory=structlog.PrintLoggerFactory(file=_SINK),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # Library loggers (pymodbus, aiomqtt) are noisy at INFO; keep warnings.
    handler = logging.StreamHandler(_SINK)
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    # Device failures are reported once by devices.poller; pymodbus would repeat them per retry.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def quiet(level: int = logging.ERROR) -> None:
    """Drop log events below `level` from now on (ours and the libraries')."""
    global _floor
    _floor = level
    logging.getLogger().setLevel(max(logging.getLogger().level, level))
