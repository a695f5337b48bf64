"""The automations page: every automation each source can see, with its health and newest job runs.

Read from the composed board only (never upstream). Health is Mogplex's own
classification (``compose.automation_health``); a job run's id is a job-run id,
so nothing here links it to the run page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dashboard.board import selectors
from dashboard.polling.gate import READ_SCOPE_ENDPOINTS

JSON = dict[str, Any]

HEALTH_WORDS = {"healthy": "Healthy", "needs_attention": "Needs attention", "no_activity": "No activity"}
HEALTH_TONES = {"healthy": "good", "needs_attention": "bad", "no_activity": "idle"}
AUTOMATION_ENDPOINTS = frozenset(e for e in READ_SCOPE_ENDPOINTS if e.startswith("/automations"))


@dataclass(frozen=True)
class SourceAutomations:
    name: str
    fetched_at: float | None
    automations: list[JSON] = field(default_factory=list)
    # False when the list may go on beyond what the board could read (a malformed cursor, the page cap).
    complete: bool = True
    # How often a whole round of its automations comes round, in seconds (None before the first plan).
    interval: float | None = None
    # Why there is nothing (or not everything) to show, in one sentence; "" when all is well.
    problem: str = ""


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _job_run(run: Any) -> JSON:
    row = selectors.with_keys(run, selectors.JOB_RUN_KEYS)
    row["problem"] = selectors.job_run_problem(row)
    row["resolution"] = selectors.problem_resolution(row, row["problem"])
    ms = _number(row.get("duration_ms"))
    row["duration_seconds"] = None if ms is None else ms / 1000
    return row


def automations_page(board: JSON | None, source_names: list[str]) -> list[SourceAutomations]:
    board = board or {}
    health = {s.get("name"): s for s in board.get("sources") or [] if isinstance(s, dict)}
    fetched: JSON = board.get("automations_fetched_at") or {}
    complete: JSON = board.get("automations_complete") or {}
    # The job runs that may need attention carry their acknowledgements and fixes.
    notable = {str(j.get("id")): j for j in board.get("job_runs") or [] if isinstance(j, dict)}
    out: list[SourceAutomations] = []
    for name in source_names:
        source: JSON = health.get(name) or {}
        rows = []
        for automation in board.get("automations") or []:
            if not isinstance(automation, dict) or automation.get("source") != name:
                continue
            health_class = automation.get("health")
            runs = [
                _job_run(notable.get(str(r.get("id")), r))
                for r in automation.get("job_runs") or []
                if isinstance(r, dict)
            ]
            rows.append(
                {
                    **automation,
                    "health_word": HEALTH_WORDS.get(str(health_class), "not fetched yet"),
                    "health_tone": HEALTH_TONES.get(str(health_class), "idle"),
                    "job_runs": runs,
                }
            )
        denied = sorted(AUTOMATION_ENDPOINTS & set(source.get("denied_endpoints") or []))
        problem = ""
        if denied:
            problem = (
                f"The token of {name} cannot read automations (403: it lacks the 'read' scope); "
                "issue a token with the 'read' scope at /settings/api-keys."
            )
        elif name not in fetched:
            problem = f"The board has not fetched {name}'s automations yet; they come with its next round."
        elif not rows:
            problem = f"{name} has no automations in Mogplex."
        out.append(
            SourceAutomations(
                name,
                _number(fetched.get(name)),
                rows,
                complete=bool(complete.get(name, True)),
                interval=_number(source.get("automations_interval_seconds")),
                problem=problem,
            )
        )
    return out
