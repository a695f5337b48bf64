"""Keeping ``manage.py run``'s parts running: a part that dies is started again, with back-off.

``manage.py run`` starts the board's processes (Valkey, the simulator, web,
worker, beat) and hands them to a :class:`Supervisor`. When one exits, the
supervisor writes one line saying which part stopped, how, and when it starts
again, and starts it again after a back-off (1 s, then 2, 4, 8 s). The other
parts keep running: they reconnect to a Valkey that comes back, and a page
shows "Connection lost" only for as long as the web app is away.

A part that keeps dying is a problem no restart fixes (a port taken, a broken
configuration): after ``max_deaths`` exits within ``window_seconds`` (5 in 5
minutes) the supervisor raises :class:`PartKeepsDying`, whose sentence names the
part, and ``manage.py run`` stops everything. Ctrl-C stops everything at once.

Hand-written rather than supervisord or honcho: those run a configuration of
their own (a file, a Procfile), and here the parts and their order depend on
the board's settings (no Valkey with ``REDIS_URL``, no simulator with Mogplex
configured), which ``manage.py run`` already decides.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

POLL_SECONDS = 0.2


class LineSink(Protocol):
    def write(self, text: str) -> object: ...
    def flush(self) -> None: ...


class PartKeepsDying(Exception):
    """A part died ``max_deaths`` times within the window; ``str()`` is the sentence to show."""


@dataclass
class Part:
    """One supervised process: how to start it, and what to wait for once it is started."""

    name: str
    argv: Sequence[str]
    # Called after each start; returns when the part can serve (e.g. Valkey answers a PING).
    ready: Callable[[], None] | None = None
    # Its output through a pipe, handed to ``started`` after each start (to relay its lines).
    piped: bool = False
    started: Callable[[subprocess.Popen[bytes]], None] | None = None
    process: subprocess.Popen[bytes] | None = None
    deaths: deque[float] = field(default_factory=deque)
    restart_at: float | None = None


def exit_description(code: int) -> str:
    """``exit code 1``, or ``killed by SIGKILL`` for a negative Popen return code."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Supervisor:
    """Starts parts, restarts those that die (with back-off), and stops them all in reverse order."""

    def __init__(
        self,
        out: LineSink,
        *,
        max_deaths: int = 5,
        window_seconds: float = 300,
        backoff_seconds: Sequence[float] = (1, 2, 4, 8),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self.max_deaths = max_deaths
        self.window_seconds = window_seconds
        self.backoff_seconds = tuple(backoff_seconds)
        self.clock = clock
        self.parts: list[Part] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        ready: Callable[[], None] | None = None,
        piped: bool = False,
        started: Callable[[subprocess.Popen[bytes]], None] | None = None,
    ) -> Part:
        """Start a part now (and wait for ``ready``); it is supervised from then on."""
        part = Part(name, list(argv), ready, piped=piped, started=started)
        self.parts.append(part)
        self._launch(part)
        return part

    def _launch(self, part: Part, *, wait: bool = True) -> None:
        # Its own session: a Ctrl-C in the terminal reaches the supervisor only, which
        # then stops the parts in order.
        if part.piped:
            part.process = subprocess.Popen(
                list(part.argv), start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        else:
            part.process = subprocess.Popen(list(part.argv), start_new_session=True)
        if part.started is not None:
            part.started(part.process)
        part.restart_at = None
        # Only the first start waits: on a restart the other parts are up and reconnect
        # by themselves, and a part that fails to come up is seen dying like any other.
        if wait and part.ready is not None:
            part.ready()

    def watch(self) -> None:
        """Supervise until interrupted; raises :class:`PartKeepsDying` when a part keeps dying."""
        while True:
            self.check()
            time.sleep(POLL_SECONDS)

    def check(self) -> None:
        """One round: note parts that died, start those whose back-off is over."""
        now = self.clock()
        for part in self.parts:
            if part.restart_at is not None:
                if now >= part.restart_at:
                    self._launch(part, wait=False)
                continue
            code = part.process.poll() if part.process is not None else None
            if code is None:
                continue
            self._died(part, code, now)

    def _died(self, part: Part, code: int, now: float) -> None:
        assert part.process is not None
        # What it leaves behind (gunicorn's workers after its master) would hold its port.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(part.process.pid, signal.SIGKILL)
        part.deaths.append(now)
        while part.deaths and part.deaths[0] < now - self.window_seconds:
            part.deaths.popleft()
        how = exit_description(code)
        deaths = len(part.deaths)
        minutes = f"{self.window_seconds / 60:g} minute{'s' if self.window_seconds != 60 else ''}"
        if deaths >= self.max_deaths:
            raise PartKeepsDying(
                f"The {part.name} process stopped {deaths} times in {minutes} (last: {how}); "
                "stopping the board. Its log lines above say why; fix that and start it again."
            )
        delay = self.backoff_seconds[min(deaths, len(self.backoff_seconds)) - 1]
        part.restart_at = now + delay
        self.out.write(
            f"board: the {part.name} process stopped ({how}); starting it again in {delay:g} s "
            f"({deaths} of {self.max_deaths} allowed in {minutes}).\n"
        )
        self.out.flush()

    def stop_all(self, timeout: float = 10) -> None:
        """Stop every part, the last started first; kill those still running after ``timeout``."""
        running = [p.process for p in reversed(self.parts) if p.process is not None]
        for process in running:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
