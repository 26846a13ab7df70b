"""openleadr's VTN (tests/openadr2b/vtn.py) as a separate process in its own venv: start it
on a free loopback port, send it commands, read what it recorded.

The venv (`.venv-openleadr/` in the repository root, git-ignored) is made once, by
`make openleadr-venv` (a dependency of `make test`) or here when missing, so openleadr's
pins never constrain ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-openleadr"
OPENLEADR = "openleadr==0.5.36"
SCRIPT = Path(__file__).with_name("vtn.py")
XSD_CHECK = Path(__file__).with_name("xsd_check.py")
PREFIX = "/OpenADR2/Simple/2.0b"


def openleadr_python() -> Path:
    """The venv's python, made (with openleadr installed) if missing."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", OPENLEADR], check=True, timeout=600
        )
        stamp.touch()
    return python


Record = dict[str, Any]


class Vtn:
    """A running VTN: `url` for the site file, `records` as they come, `send()` commands."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int, scheme: str = "http") -> None:
        self.proc = proc
        self.port = port
        self.url = f"{scheme}://127.0.0.1:{port}{PREFIX}"
        self.records: list[Record] = []
        self._reader = asyncio.create_task(self._read())
        self._changed = asyncio.Event()

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                self.records.append(json.loads(line))
            except ValueError:
                continue  # openleadr prints banners on stdout
            self._changed.set()

    def of(self, rec: str) -> list[Record]:
        return [r for r in self.records if r["rec"] == rec]

    async def until(self, check: Callable[[], Any], wall_s: float, what: str) -> Any:
        """Wait (wall time, bounded) until `check()` is truthy; its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wall_s
        while not (result := check()):
            left = deadline - loop.time()
            if left <= 0 or self.proc.returncode is not None:
                raise AssertionError(
                    f"VTN: {what} not within {wall_s} s; records: {self.records[-8:]}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
        return result

    def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd).encode() + b"\n")

    async def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def running_vtn(
    python: Path,
    *,
    poll_s: float = 5.0,
    granularity_s: float = 5.0,
    back_s: float = 10.0,
    tls_dir: Path | None = None,
    sign: bool = False,
):  # type: ignore[no-untyped-def]
    """The VTN on a free loopback port, stopped on exit; https with mutual TLS when given
    `tls_dir` (tests/openadr2b/tls.py); `sign`: XML signatures both ways (needs `tls_dir`)."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        str(python),
        str(SCRIPT),
        *("--port", str(port), "--poll-s", str(poll_s)),
        *("--granularity-s", str(granularity_s), "--back-s", str(back_s)),
        *(("--tls-dir", str(tls_dir)) if tls_dir else ()),
        *(("--sign",) if sign else ()),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    vtn = Vtn(proc, port, "https" if tls_dir else "http")
    try:
        await vtn.until(lambda: vtn.of("ready"), 30, "ready")
        yield vtn
    finally:
        await vtn.stop()
