"""The history under a filter as CSV or JSON, streamed row by row.

Rows are read from the database in chunks (``QuerySet.iterator``) and written out
as they come, so an export of any size holds one chunk in memory, never all of it.
Upstream text is agent-written: in CSV a cell that a spreadsheet would take for a
formula is neutralised (see ``csv_cell``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

from dashboard.history.search import export_rows
from dashboard.models import RunSummary

CHUNK_ROWS = 1000
LINES_PER_CHUNK = 200
CSV_COLUMNS = (
    "run_id",
    "status",
    "repo_name",
    "repo_id",
    "branch_base",
    "branch_working",
    "harness",
    "source",
    "created_at",
    "finished_at",
    "duration_seconds",
    "pr_url",
    "delivery",
    "failure_code",
    "failure_reason",
    "exit_code",
    "error",
    "event_count",
    "acknowledged",
)
# What a spreadsheet reads as the start of a formula (OWASP's CSV injection list:
# = + - @, and tab and carriage return, which some spreadsheets strip first).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str | int | float:
    """A value as a CSV cell: numbers as they are; text that would start a formula gets a leading ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _acknowledged(ack: dict[str, Any]) -> str:
    """One acknowledgement in a CSV cell: "failure by ada at 2026-...: note"."""
    text = f"{ack['problem']} by {ack['by']} at {ack['at']}"
    return text + (f": {ack['note']}" if ack["note"] else "")


class _Line:
    """A file-like target for ``csv.writer`` that hands back what was written."""

    def write(self, text: str) -> str:
        return text


def _chunks(lines: Iterator[str]) -> Iterator[str]:
    """Lines joined into chunks of ``LINES_PER_CHUNK``: one write to the client per chunk, not per row."""
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= LINES_PER_CHUNK:
            yield "".join(batch)
            batch = []
    if batch:
        yield "".join(batch)


def history_csv(runs: QuerySet[RunSummary]) -> Iterator[str]:
    """The header, then one CSV line per summary, in chunks."""
    writer = csv.writer(_Line())

    def lines() -> Iterator[str]:
        yield writer.writerow(CSV_COLUMNS)
        for row in export_rows(runs, chunk_size=CHUNK_ROWS):
            row["acknowledged"] = "; ".join(_acknowledged(ack) for ack in row["acknowledgements"])
            yield writer.writerow([csv_cell(row[column]) for column in CSV_COLUMNS])

    return _chunks(lines())


def history_json(runs: QuerySet[RunSummary], *, filters: dict[str, str]) -> Iterator[str]:
    """``{"filters": {...}, "runs": [...]}``, in chunks."""

    def lines() -> Iterator[str]:
        yield '{"filters": ' + json.dumps(filters) + ', "runs": ['
        separator = "\n"
        for row in export_rows(runs, chunk_size=CHUNK_ROWS):
            yield separator + json.dumps(row, ensure_ascii=False)
            separator = ",\n"
        yield "\n]}\n"

    return _chunks(lines())
