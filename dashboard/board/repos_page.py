"""The repos page: every repo each source can see (``/repos``), joined with the board's runs and sandboxes.

Read from the snapshot store only (never upstream). ``/repos`` answers at most
``REPOS_CAP`` repos and has no cursor, so a list at the cap is flagged as
possibly incomplete; an empty list says what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dashboard import snapshots
from dashboard.board import selectors

JSON = dict[str, Any]

REPOS_CAP = 200


@dataclass(frozen=True)
class SourceRepos:
    name: str
    fetched_at: float | None
    repos: list[JSON] = field(default_factory=list)
    at_cap: bool = False
    # Why the list is empty (or not there), in one sentence; "" when it has repos.
    problem: str = ""


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def repos_page(board: JSON | None, source_names: list[str]) -> list[SourceRepos]:
    board = board or {}
    runs = [r for r in board.get("runs") or [] if isinstance(r, dict)]
    boxes = [b for b in board.get("sandboxes") or [] if isinstance(b, dict)]
    health = {s.get("name"): s for s in board.get("sources") or [] if isinstance(s, dict)}
    out: list[SourceRepos] = []
    for name in source_names:
        record = snapshots.repos_read(name)
        if record is None:
            out.append(
                SourceRepos(
                    name,
                    None,
                    problem=f"The board has not fetched {name}'s repos yet; they come with its next poll.",
                )
            )
            continue
        rows: list[JSON] = []
        for repo in record.get("repos") or []:
            if not isinstance(repo, dict):
                continue
            repo_id = str(repo.get("id") or "")
            mine = [r for r in runs if r.get("repo_id") == repo_id and (r.get("source") in (name, None))]
            active = [r for r in mine if r.get("status") in selectors.ACTIVE_RUN_STATUSES]
            finished = [r for r in mine if r.get("status") in selectors.TERMINAL_RUN_STATUSES]
            last = max(finished, key=lambda r: selectors.run_ended_at(r) or 0.0, default=None)
            rows.append(
                {
                    "id": repo_id,
                    "full_name": _text(repo.get("full_name")) or repo_id,
                    "default_branch": _text(repo.get("default_branch")),
                    "root_directory": _text(repo.get("root_directory")),
                    "covered": repo.get("installation_id") is not None,
                    "active_runs": active,
                    "last_run": last,
                    "last_run_at": selectors.run_ended_at(last) if last else None,
                    "sandboxes": [
                        b for b in boxes if b.get("repo_id") == repo_id and b.get("source") == name
                    ],
                }
            )
        rows.sort(key=lambda r: str(r["full_name"]).lower())
        problem = ""
        if not rows:
            account = (health.get(name) or {}).get("account") or {}
            label = account.get("github_label") if isinstance(account, dict) else None
            problem = f"{name} sees no repos: fix the GitHub App coverage or the repo import in Mogplex" + (
                f" (GitHub: {label})." if isinstance(label, str) and label else "."
            )
        fetched = record.get("fetched_at")
        out.append(
            SourceRepos(
                name,
                float(fetched) if isinstance(fetched, int | float) else None,
                rows,
                at_cap=len(rows) >= REPOS_CAP,
                problem=problem,
            )
        )
    return out
