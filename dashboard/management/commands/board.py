"""``manage.py board``: the composed board for scripts (``--json``) and people.

Reads only the snapshot store, never upstream. Exit codes follow the Mogplex
CLI (sysexits), so the same shell ``case`` works for both.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import Any, NoReturn

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from dashboard import snapshots
from dashboard.board import selectors
from dashboard.history.command import history_arguments, history_print

EXIT_OK = 0
EXIT_UNAUTHORIZED = 64
EXIT_FORBIDDEN = 65
EXIT_UNAVAILABLE = 69
EXIT_RATE_LIMITED = 75

# Source states and the exit code each maps to, in order of precedence.
STATE_EXITS: tuple[tuple[frozenset[str], int], ...] = (
    (frozenset({"unauthorized"}), EXIT_UNAUTHORIZED),
    (frozenset({"forbidden"}), EXIT_FORBIDDEN),
    (frozenset({"rate_limited"}), EXIT_RATE_LIMITED),
    (frozenset({"unavailable", "timeout", "protocol", "redirect"}), EXIT_UNAVAILABLE),
)


def poller_silent_for(board: dict[str, Any], heartbeat: float | None, now: float) -> float | None:
    """Seconds the poller has been silent past ``BOARD_STALE_SECONDS`` (its last tick's age), or ``None``.

    ``heartbeat`` is the poller's own heartbeat; without one, the board's.
    """
    beat = heartbeat if heartbeat is not None else board.get("heartbeat_at")
    if not isinstance(beat, int | float):
        return float("inf")
    age = now - float(beat)
    return age if age > settings.BOARD_STALE_SECONDS else None


def board_exit_code(
    board: dict[str, Any], *, heartbeat: float | None = None, now: float | None = None
) -> int:
    """The exit code for a composed board: 69 when the poller is silent, else the most pressing source problem, or 0.

    A silent poller comes first: every source state on the board is then as old as its last tick.
    """
    if poller_silent_for(board, heartbeat, time.time() if now is None else now) is not None:
        return EXIT_UNAVAILABLE
    sources = board.get("sources") or []
    if not sources or not settings.MOGPLEX_TOKENS:
        return EXIT_UNAUTHORIZED
    states = {str(s.get("state")) for s in sources if isinstance(s, dict)}
    for wanted, code in STATE_EXITS:
        if states & wanted:
            return code
    return EXIT_OK


def board_truth(board: dict[str, Any]) -> dict[str, Any]:
    """The composed board with what the pages make of it: the overall ``state``
    (ok, attention, stale, poller_down), the sources whose data is stale, and each
    run's and sandbox's freshness (its source's), as ``/api/board.json`` has them."""
    state = selectors.board_state(board=board)
    fresh = {("run", r.get("run_id")): r.get("freshness") for r in [*state.active_runs, *state.finished_runs]}
    fresh.update({("sandbox", s.get("id")): s.get("freshness") for s in state.sandboxes})

    def annotated(kind: str, key: str, rows: Any) -> list[Any]:
        out = []
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict):
                found = fresh.get((kind, row.get(key)))
                row = {
                    **row,
                    "freshness": selectors.freshness_json(found)
                    if isinstance(found, selectors.Freshness)
                    else None,
                }
            out.append(row)
        return out

    return {
        **board,
        "state": state.health,
        "stale_sources": state.stale_sources,
        "runs": annotated("run", "run_id", board.get("runs")),
        "sandboxes": annotated("sandbox", "id", board.get("sandboxes")),
    }


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _printable(value: Any, limit: int = 80) -> str:
    """Upstream text made safe for a terminal: no control characters, clipped."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Command(BaseCommand):
    help = (
        "Print the board as the poller last composed it: a short summary, or with --json the "
        "whole composed board for scripts. Reads Redis only, never Mogplex. Exit codes (as the "
        "mogplex CLI): 0 ok; 69 the poller has not reported within BOARD_STALE_SECONDS (this comes "
        "first: the sources' states are then as old as its last tick); 64 a source is unauthorized (401) or no source is configured; "
        "65 a source is forbidden (403, missing scope); 75 a source is rate limited (429); "
        "69 a source is unavailable, timing out, answering garbage or redirecting, or there is "
        "no board yet, or Redis is unreachable. When several apply: 64, then 65, then 75, then 69. "
        "`board history [--json] [filters]` prints finished runs from the database instead "
        "(newest first; exit 0, or 1 with a sentence for a bad filter)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "what",
            nargs="?",
            choices=("history",),
            help="history: finished runs kept in the database, under the filters below",
        )
        parser.add_argument(
            "--json",
            dest="as_json",
            action="store_true",
            help="print the composed board (or history) as JSON",
        )
        history_arguments(parser)

    def handle(self, *args: Any, as_json: bool, what: str | None = None, **options: Any) -> None:
        if what == "history":
            history_print(self.stdout, options, as_json=as_json)
            return
        try:
            board = snapshots.board_read()
        except redis.RedisError:
            self._fail(
                EXIT_UNAVAILABLE,
                "Redis is unreachable; check REDIS_URL and that Redis (or `manage.py run`) is up.",
            )
        if board is None:
            self._fail(
                EXIT_UNAVAILABLE,
                "No board has been composed yet; start the poller (Celery worker and beat, or `manage.py run`).",
            )
        heartbeat = snapshots.heartbeat_read()
        code = board_exit_code(board, heartbeat=heartbeat)
        if as_json:
            self.stdout.write(json.dumps(board_truth(board), indent=2, sort_keys=True))
        else:
            self._summary(board)
        if code != EXIT_OK:
            for line in self._problems(board, heartbeat):
                self.stderr.write(line)
            sys.exit(code)

    def _problems(self, board: dict[str, Any], heartbeat: float | None) -> list[str]:
        silent = poller_silent_for(board, heartbeat, time.time())
        if silent is not None:
            since = "never reported" if silent == float("inf") else f"not reported for {_age(silent)}"
            return [
                f"The poller has {since} (over BOARD_STALE_SECONDS, {settings.BOARD_STALE_SECONDS}s), so "
                "nothing on the board is current; start or fix the Celery worker and beat."
            ]
        sources = [s for s in board.get("sources") or [] if isinstance(s, dict)]
        if not sources or not settings.MOGPLEX_TOKENS:
            return ["No Mogplex source is configured; set MOGPLEX_TOKEN (or MOGPLEX_TOKEN_<NAME>)."]
        return [
            f"Source {_printable(s.get('name'))} is {s.get('state')}: {_printable(s.get('message') or '', 200)}"
            for s in sources
            if s.get("state") not in ("ok", "unknown", None)
        ]

    def _summary(self, board: dict[str, Any]) -> None:
        now = time.time()
        composed_at = board.get("composed_at")
        heartbeat_at = board.get("heartbeat_at")
        line = f"Board version {board.get('version')}"
        if isinstance(composed_at, int | float):
            line += f", composed {_age(now - composed_at)} ago"
        if isinstance(heartbeat_at, int | float):
            age = now - heartbeat_at
            line += f"; poller heartbeat {_age(age)} ago"
            if age > settings.BOARD_STALE_SECONDS:
                line += " (STALE: is the poller running?)"
        self.stdout.write(line + ".")
        state = selectors.board_state(board=board)
        stale = ", ".join(_printable(name, 40) for name in state.stale_sources)
        self.stdout.write(f"State: {state.health}" + (f" (data too old from {stale})" if stale else ""))
        runs = [r for r in board.get("runs") or [] if isinstance(r, dict)]
        statuses = Counter(_printable(r.get("status") or "unknown", 30) for r in runs)
        counts = ", ".join(
            f"{n} {status}" for status, n in sorted(statuses.items(), key=lambda i: (-i[1], i[0]))
        )
        self.stdout.write(f"Runs: {len(runs)}" + (f" ({counts})" if counts else ""))
        self.stdout.write(f"Sandboxes: {len(board.get('sandboxes') or [])}")
        sources = [s for s in board.get("sources") or [] if isinstance(s, dict)]
        self.stdout.write(f"Sources: {len(sources)}")
        for source in sources:
            detail = [str(source.get("state"))]
            if source.get("budget") is not None:
                detail.append(
                    f"budget {source.get('budget_used', '?')}/{source['budget']} per "
                    f"{source.get('window_seconds', '?')}s"
                )
            if source.get("effective_interval_seconds") is not None:
                detail.append(f"runs refresh every {source['effective_interval_seconds']}s")
            if source.get("last_success_at"):
                detail.append(f"last success {_age(now - float(source['last_success_at']))} ago")
            if source.get("state") not in ("ok", None) and source.get("message"):
                detail.append(_printable(source["message"], 200))
            self.stdout.write(f"  {_printable(source.get('name'))}: " + "; ".join(detail))

    def _fail(self, code: int, message: str) -> NoReturn:
        self.stderr.write(message)
        sys.exit(code)
