"""Acknowledging a problem on the board, and taking that back.

A signed-in user says "seen, handled" about a failed or stalled run, an
errored sandbox, or an automation's failed job run or one pending too long; the problem then leaves the attention lane (and the wall's
headline count) and stays, dimmed with who and when, in the finished list and
on its page. The acknowledgement is a database row (operator state, never lost
on a restart); the next board composition carries it to every page.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from dashboard import snapshots
from dashboard.board import selectors
from dashboard.board.templatetags import age_text
from dashboard.models import Acknowledgement, TrackedRun

PROBLEM_WORDS = {"failed": "failure", "stalled": "stall", "error": "error"}
TARGET_WORDS = {"run": "Run", "sandbox": "Sandbox", "job_run": "Job run"}
# Where each target's rows are in the composed board, and the key naming each.
_BOARD_ROWS = {"run": ("runs", "run_id"), "sandbox": ("sandboxes", "id"), "job_run": ("job_runs", "id")}


def target_label(target: str, target_id: uuid.UUID) -> str:
    """ "Run <id>", "Sandbox <id>", "Job run <id>": how sentences name the target."""
    return f"{TARGET_WORDS[target]} {target_id}"


class AcknowledgementRefused(ValueError):
    """Why an acknowledgement (or its undoing) was refused: one sentence, and the HTTP status to answer."""

    def __init__(self, sentence: str, status: int) -> None:
        super().__init__(sentence)
        self.status = status


@dataclass(frozen=True)
class Problem:
    """What a target's current problem is, as the composed board shows it."""

    target: str
    target_id: uuid.UUID
    problem: str | None
    label: str


def _board_row(target: str, target_id: uuid.UUID) -> dict[str, Any] | None:
    board = snapshots.board_read() or {}
    name, key = _BOARD_ROWS[target]
    rows = board.get(name)
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and str(row.get(key) or "").lower() == str(target_id):
            return row
    return None


def problem_read(*, target: str, target_id: uuid.UUID) -> Problem:
    """The current problem of a run or sandbox on the board; refused when the board does not show it."""
    label = target_label(target, target_id)
    row = _board_row(target, target_id)
    if row is None:
        if target == "run" and TrackedRun.objects.filter(run_id=target_id).exists():
            raise AcknowledgementRefused(
                f"{label} is no longer on the board, so there is nothing to acknowledge.", 404
            )
        what = "tracked by the board" if target == "run" else "on the board"
        raise AcknowledgementRefused(f"{label} is not {what}; check the id.", 404)
    if target == "run":
        problem = selectors.run_problem(selectors.with_keys(row, selectors.RUN_KEYS))
    elif target == "job_run":
        problem = selectors.job_run_problem(row)
    else:
        problem = "error" if row.get("status") == "error" else None
    return Problem(target, target_id, problem, label)


def acknowledgement_create(
    *, target: str, target_id: uuid.UUID, user: User, note: str, now: float
) -> Acknowledgement:
    """Acknowledge the target's current problem, with an optional note; refused with a sentence otherwise.

    Nothing changes when it is refused: an unknown target, one with no problem
    to acknowledge, a problem already acknowledged, a note that is too long.
    """
    note = note.strip()
    if len(note) > Acknowledgement.NOTE_MAX_CHARS:
        raise AcknowledgementRefused(
            f"The note is {len(note)} characters; keep it to {Acknowledgement.NOTE_MAX_CHARS} or fewer.",
            400,
        )
    found = problem_read(target=target, target_id=target_id)
    if found.problem is None:
        what = "in error" if target == "sandbox" else "failed or stalled"
        raise AcknowledgementRefused(f"{found.label} is not {what}, so there is nothing to acknowledge.", 409)
    word = PROBLEM_WORDS[found.problem]
    earlier = Acknowledgement.objects.filter(
        target=target, target_id=target_id, problem=found.problem
    ).first()
    if earlier is not None:
        raise AcknowledgementRefused(_already(found.label, word, earlier, now), 409)
    try:
        with transaction.atomic():
            return Acknowledgement.objects.create(
                target=target,
                target_id=target_id,
                problem=found.problem,
                user=user,
                username=user.get_username(),
                note=note,
            )
    except IntegrityError:
        # Someone else acknowledged it between our check and our write.
        earlier = Acknowledgement.objects.filter(
            target=target, target_id=target_id, problem=found.problem
        ).first()
        if earlier is None:
            raise
        raise AcknowledgementRefused(_already(found.label, word, earlier, now), 409) from None


def _already(label: str, word: str, ack: Acknowledgement, now: float) -> str:
    ago = age_text(now - ack.acknowledged_at.timestamp())
    return f"{label}'s {word} was already acknowledged by {ack.username} {ago} ago."


def acknowledgement_delete(*, target: str, target_id: uuid.UUID) -> int:
    """Take back every acknowledgement of the target (it returns to the lane if still a problem); how many."""
    deleted, _ = Acknowledgement.objects.filter(target=target, target_id=target_id).delete()
    if not deleted:
        label = target_label(target, target_id)
        raise AcknowledgementRefused(f"{label} is not acknowledged, so there is nothing to take back.", 409)
    return deleted
