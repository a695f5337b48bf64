"""Rows the board cannot read: each is shown as one row that says so, and logged once.

A poisoned record must cost its own row, never the board. It is caught at three points:

1. the poller: the Mogplex parsers turn a run, sandbox or event they cannot read
   into a placeholder with status ``unreadable`` and a sentence in ``error``
   (``dashboard.mogplex.models``); the selectors show it as such;
2. the page: before a composed row reaches a template, ``run_row_problem`` and
   ``sandbox_row_problem`` check that every field a template uses has the type it
   expects (a board written by another version of the board, or by a bug, may not);
   a row that fails becomes a placeholder;
3. the template: ``{% cached_row %}`` renders its ``{% unreadable %}`` part instead
   of a row whose markup raised (see ``dashboard.board.templatetags``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from dashboard.mogplex.models import json_type

logger = logging.getLogger("dashboard.board")

JSON = dict[str, Any]

UNREADABLE = "unreadable"

_TEXT = (str, type(None))
_NUMBER = (int, float, type(None))
_FLAG = (bool, type(None))
# Every field of a composed run and sandbox row, with the types a template can show.
# The board's selectors give a row every one of these keys (``selectors.RUN_KEYS``).
RUN_FIELDS: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(
        (
            "source",
            "status",
            "repo_id",
            "repo_name",
            "harness",
            "branch_base",
            "branch_working",
            "created_at",
            "updated_at",
            "error",
            "sandbox_record_id",
            "sandbox_id",
            "pr_url",
            "failure_code",
            "failure_reason",
            "delivery",
            "lookup",
            "stall_reason",
            "sig",
        ),
        _TEXT,
    ),
    **dict.fromkeys(("event_count", "fetched_at", "tracked_at", "finished_at", "longer_than_usual"), _NUMBER),
    **dict.fromkeys(("events_truncated", "possibly_stale"), _FLAG),
    "latest_event": (dict, type(None)),
}
_EVENT_FIELDS = dict.fromkeys(("type", "tool_name", "message", "created_at"), _TEXT)
SANDBOX_FIELDS: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(
        (
            "id",
            "source",
            "sandbox_id",
            "status",
            "repo_id",
            "repo_name",
            "base_branch",
            "working_branch",
            "preview_url",
            "last_active_at",
            "created_at",
            "error",
            "tracked_run_id",
            "sig",
        ),
        _TEXT,
    ),
    "fetched_at": _NUMBER,
}


def _wrong_field(
    row: Mapping[str, Any], fields: Mapping[str, tuple[type, ...]], prefix: str = ""
) -> str | None:
    for key, types in fields.items():
        value = row.get(key)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"its {prefix}{key!r} is {json_type(value)}"
    return None


# What the checks below found for rows already seen, by the row's signature (a
# hash of everything in it but its fetch time, whose type is part of the key):
# a board of 300 rows where one changed checks one row. Emptied when it fills.
_SEEN_LIMIT = 4096
_seen: dict[tuple[str, str, type], str | None] = {}


def _remembered(what: str, row: Mapping[str, Any], check: Callable[[], str | None]) -> str | None:
    sig = row.get("sig")
    if not isinstance(sig, str):
        return check()
    key = (what, sig, type(row.get("fetched_at")))
    if key not in _seen:
        if len(_seen) >= _SEEN_LIMIT:
            _seen.clear()
        _seen[key] = check()
    return _seen[key]


def run_row_problem(row: object) -> str | None:
    """What is wrong with a composed run row, in a few words, or None when a template can show it."""
    if not isinstance(row, Mapping):
        return f"it is {json_type(row)}, not a run"
    return _remembered("run", row, lambda: _run_problem(row))


def _run_problem(row: Mapping[str, Any]) -> str | None:
    if not _is_uuid(row.get("run_id")):
        return "its 'run_id' is not a run id"
    problem = _wrong_field(row, RUN_FIELDS)
    if problem is None and isinstance(row.get("latest_event"), Mapping):
        problem = _wrong_field(row["latest_event"], _EVENT_FIELDS, "latest event's ")
    return problem


def sandbox_row_problem(row: object) -> str | None:
    """What is wrong with a composed sandbox row, or None when a template can show it."""
    if not isinstance(row, Mapping):
        return f"it is {json_type(row)}, not a sandbox"
    return _remembered("sandbox", row, lambda: _wrong_field(row, SANDBOX_FIELDS))


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def placeholder(record: object, *, id_key: str, what: str, problem: str, keys: list[str]) -> JSON:
    """The row shown for a record that could not be read: its id if it has a usable one, and why."""
    raw_id = record.get(id_key) if isinstance(record, Mapping) else None
    record_id = str(raw_id) if _is_uuid(raw_id) else None
    row: JSON = dict.fromkeys(keys)
    row.update(
        {
            id_key: record_id,
            "status": UNREADABLE,
            "unreadable": f"In the board's snapshot, {problem}.",
            "sig": f"unreadable:{record_id}:{problem}",
        }
    )
    unreadable_log(what, record_id, problem)
    return row


_logged: set[tuple[str, str | None, str]] = set()
_logged_lock = threading.Lock()
# Distinct problems remembered per process; past this the memory starts again (and logs again).
_LOGGED_LIMIT = 1000


def unreadable_log(what: str, record_id: str | None, problem: str) -> None:
    """One warning per unreadable record and problem in this process, not one per page view."""
    key = (what, record_id, problem)
    with _logged_lock:
        if key in _logged:
            return
        if len(_logged) >= _LOGGED_LIMIT:
            _logged.clear()
        _logged.add(key)
    logger.warning("unreadable row %s=%s problem=%s", what, record_id or "unknown", problem)
