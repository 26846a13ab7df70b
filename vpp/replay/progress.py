"""How far a replay has come, for the person who started it: on a terminal a live bar (rich),
with log lines printed above it; when stderr is piped a `replay_progress` log line every
`period_s` of wall time (and at the start and the end); with `quiet`, nothing."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from types import TracebackType
from zoneinfo import ZoneInfo

import structlog
from rich.console import Console
from rich.file_proxy import FileProxy
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from vpp.log import logs_to

log = structlog.get_logger(__name__)

PERIOD_S = 5.0
"""Wall seconds between two progress lines when not on a terminal."""


class ReplayProgress:
    """A context manager and the replay's `progress(t, total)` callback (simulated seconds
    since the start). `wall` is the wall clock (monotonic seconds) used for the speed and
    the line period; `console` where the bar goes (default: stderr)."""

    def __init__(
        self,
        label: str,
        start: datetime,
        tz: ZoneInfo,
        total_s: float,
        *,
        quiet: bool = False,
        console: Console | None = None,
        period_s: float = PERIOD_S,
        wall: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.label = label
        self.start = start.astimezone(tz)
        self.total_s = total_s
        self.quiet = quiet
        self.console = console or Console(stderr=True)
        self.period_s = period_s
        self.wall = wall
        self._bar: Progress | None = None
        self._logs: AbstractContextManager[None] | None = None
        self._task: TaskID | None = None
        self._wall0 = 0.0
        self._last_line: float | None = None
        self._last_t: float | None = None
        self._t = 0.0

    @property
    def live(self) -> bool:
        """A live bar is shown (stderr is a terminal and not quiet)."""
        return not self.quiet and self.console.is_terminal

    def __enter__(self) -> ReplayProgress:
        self._wall0 = self.wall()
        if self.live:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[sim]}"),
                TextColumn("{task.fields[speed]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            # Log lines through the bar's console, which prints them above the bar.
            self._logs = logs_to(FileProxy(self.console, sys.stderr))
            self._logs.__enter__()
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total_s, sim="", speed="")
        elif not self.quiet:
            self._line(0.0)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)
            if self._logs is not None:
                self._logs.__exit__(exc_type, exc, tb)
        elif not self.quiet and exc_type is None and self._last_t != self._t:
            self._line(self._t)  # where it ended, whenever the last periodic line was

    def __call__(self, t: float, _total: float) -> None:
        self._t = t
        if self._bar is not None and self._task is not None:
            when = self.start + timedelta(seconds=t)
            self._bar.update(
                self._task, completed=t, sim=when.strftime("%a %H:%M"), speed=self._speed(t)
            )
        elif not self.quiet and (
            self._last_line is None
            or self.wall() - self._last_line >= self.period_s
            or t >= self.total_s
        ):
            self._line(t)

    def _speed(self, t: float) -> str:
        return f"{t / max(self.wall() - self._wall0, 1e-6):,.0f}x"

    def _line(self, t: float) -> None:
        self._last_line, self._last_t = self.wall(), t
        when = self.start + timedelta(seconds=t)
        log.info(
            "replay_progress",
            replay=self.label,
            sim_time=when.isoformat(),
            done_pct=round(100 * t / self.total_s, 1) if self.total_s else 100.0,
            speed=self._speed(t),
            wall_s=round(self._last_line - self._wall0, 1),
        )
