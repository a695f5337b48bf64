"""The snapshot store: versions change with content only."""

from __future__ import annotations

from dashboard import snapshots


def test_board_version_ignores_fetch_times_and_budget_spent() -> None:
    board = {
        "runs": [{"run_id": "r1", "status": "streaming", "fetched_at": 1.0}],
        "sources": [{"name": "demo", "state": "ok", "budget_used": 3, "last_success_at": 1.0}],
        "composed_at": 1.0,
    }
    later = {
        "runs": [{"run_id": "r1", "status": "streaming", "fetched_at": 9.0}],
        "sources": [{"name": "demo", "state": "ok", "budget_used": 17, "last_success_at": 9.0}],
        "composed_at": 9.0,
    }
    changed = {**later, "runs": [{"run_id": "r1", "status": "success", "fetched_at": 9.0}]}
    assert snapshots.content_version(board) == snapshots.content_version(later)
    assert snapshots.content_version(changed) != snapshots.content_version(later)
