"""``manage.py board history``: finished runs for scripts, under the history page's filters."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser, OutputWrapper

from dashboard.history.search import export_rows, history_request_parse, history_runs

DEFAULT_LIMIT = 100


def history_arguments(parser: CommandParser) -> None:
    """The history filters as options (the same names as the page's URL parameters)."""
    group = parser.add_argument_group("history filters (with `history`)")
    group.add_argument("--repo", help="repo full name (owner/name) or repo id")
    group.add_argument("--branch", help="base or working branch")
    group.add_argument("--status", help="success, failed or cancelled")
    group.add_argument("--source", help="the source (team member) that owns the run")
    group.add_argument("--harness")
    group.add_argument(
        "--failure", help="failure code: command_failed, model_access_denied, rate_limited, ..."
    )
    group.add_argument("--q", "--error", dest="q", help="text in the run's error")
    group.add_argument("--since", help="finished on or after this day (YYYY-MM-DD)")
    group.add_argument("--until", help="finished on or before this day (YYYY-MM-DD)")
    group.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"at most this many runs (default {DEFAULT_LIMIT}; 0: all)",
    )


def _printable(value: Any, limit: int = 60) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def history_print(out: OutputWrapper, options: dict[str, Any], *, as_json: bool) -> None:
    """Print the runs matching the filters in ``options``, newest first; a bad filter is a ``CommandError``."""
    asked = history_request_parse({k: v for k, v in options.items() if isinstance(v, str)})
    if asked.problems:
        raise CommandError(" ".join(asked.problems))
    limit = options.get("limit", DEFAULT_LIMIT)
    if limit is None or limit < 0:
        raise CommandError("--limit must be 0 (all runs) or a positive number of runs.")
    runs = history_runs(asked.filters)
    if limit:
        runs = runs[:limit]
    if as_json:
        rows = list(export_rows(runs))
        out.write(json.dumps({"filters": asked.filters.query(), "runs": rows}, indent=2))
        return
    count = 0
    for summary in runs.iterator(chunk_size=1000):
        count += 1
        took = "" if summary.duration_seconds is None else f" took {summary.duration_seconds:.0f}s"
        reason = f" ({_printable(summary.failure_reason)})" if summary.failure_reason else ""
        out.write(
            f"{summary.finished_at:%Y-%m-%d %H:%M} {summary.status:<9} "
            f"{_printable(summary.repo_name or summary.repo_id or '?', 40)} {summary.run_id}{took}{reason}"
        )
    if not count:
        out.write("No finished runs match." if asked.filters.active else "No finished runs kept yet.")
