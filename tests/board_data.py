"""Composed board snapshots for the board's tests, written through the real snapshot store."""

from __future__ import annotations

import time
import uuid
from typing import Any

from dashboard import snapshots
from dashboard.polling import compose

RUN_ACTIVE = "11111111-1111-4111-8111-111111111111"
RUN_FAILED = "22222222-2222-4222-8222-222222222222"
RUN_DONE = "33333333-3333-4333-8333-333333333333"
SANDBOX_UP = "44444444-4444-4444-8444-444444444444"


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def run_row(run_id: str, status: str, *, now: float, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": run_id,
        "source": "demo",
        "status": status,
        "repo_id": "repo-1",
        "repo_name": "acme/web",
        "harness": "claude-code",
        "branch_base": "main",
        "branch_working": f"agent/{status}",
        "created_at": iso(now - 300),
        "updated_at": iso(now - 20),
        "error": None,
        "sandbox_record_id": SANDBOX_UP,
        "sandbox_id": "sbx-1",
        "pr_url": None,
        "latest_event": {
            "type": "tool_started",
            "tool_name": "bash",
            "message": "running tests",
            "created_at": iso(now - 20),
        },
        "event_count": 12,
        "events_truncated": False,
        "fetched_at": now - 2,
        "lookup": "found",
        "tracked_at": now - 400,
        "finished_at": None,
        "possibly_stale": False,
    }
    row.update(fields)
    return row


def sandbox_row(sandbox_id: str, status: str, *, now: float, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": sandbox_id,
        "source": "demo",
        "sandbox_id": "sbx-1",
        "status": status,
        "repo_id": "repo-1",
        "repo_name": "acme/web",
        "base_branch": "main",
        "working_branch": "agent/streaming",
        "preview_url": "https://preview.example.com/app",
        "last_active_at": iso(now - 30),
        "created_at": iso(now - 600),
        "error": None,
        "fetched_at": now - 3,
    }
    row.update(fields)
    return row


def source_row(name: str = "demo", *, now: float, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": name,
        "state": "ok",
        "message": "Fetching normally.",
        "last_success_at": now - 2,
        "last_error_at": None,
        "last_error_kind": None,
        "paused_until": None,
        "budget": 50,
        "budget_used": 7,
        "window_seconds": 60,
        "effective_interval_seconds": 10,
        "active_runs": 1,
    }
    row.update(fields)
    return row


def board(now: float | None = None, **overrides: Any) -> dict[str, Any]:
    """A healthy board: one streaming run, one failed, one succeeded, one running sandbox."""
    now = time.time() if now is None else now
    composed: dict[str, Any] = {
        "composed_at": now - 1,
        "heartbeat_at": now - 1,
        "sources": [source_row(now=now)],
        "runs": [
            run_row(RUN_ACTIVE, "streaming", now=now),
            run_row(
                RUN_FAILED,
                "failed",
                now=now,
                error="tests failed",
                latest_event={
                    "type": "failed",
                    "tool_name": None,
                    "message": "exit 1",
                    "created_at": iso(now - 60),
                },
                finished_at=now - 60,
                tracked_at=now - 500,
                repo_name="acme/api",
            ),
            run_row(
                RUN_DONE,
                "success",
                now=now,
                pr_url="https://github.com/acme/web/pull/7",
                finished_at=now - 120,
                tracked_at=now - 600,
            ),
        ],
        "sandboxes": [sandbox_row(SANDBOX_UP, "running", now=now)],
        "sandboxes_fetched_at": {"demo": now - 3},
    }
    composed.update(overrides)
    return composed


def wall_board(items: int, banners: int, now: float) -> dict[str, Any]:
    """A busy wall: ``items`` runs (a quarter failed, one stalled), ``items`` sandboxes, and sources for banners.

    ``banners`` 1 or 2: that many sources lost their token (each is a banner); the
    third banner, a poller that stopped, is the publisher's heartbeat to set.
    """
    runs = [
        run_row(
            f"{n:08d}-1111-4111-8111-111111111111",
            ("streaming", "pending", "failed", "streaming")[n % 4],
            now=now,
            repo_name=f"acme/service-{n % 7}",
            branch_working=f"agent/fix-flaky-test-{n}",
            tracked_at=now - 5000 + n,
            finished_at=now - 100 - n if n % 4 == 2 else None,
            error="pytest: 3 failed, 120 passed in tests/test_payments.py" if n % 4 == 2 else None,
            possibly_stale=n == 5,
        )
        for n in range(items)
    ]
    boxes = [
        sandbox_row(
            f"{n:08d}-4444-4444-8444-444444444444", ("running", "creating", "installing")[n % 3], now=now
        )
        for n in range(items)
    ]
    sources = [source_row(now=now)]
    # The banners: a source that lost its token, another one, then a poller that stopped.
    for n in range(min(banners, 2)):
        sources.append(
            source_row(
                f"team-{n}",
                now=now,
                state="unauthorized",
                message="Mogplex rejected the token (401): it was revoked or mistyped; "
                "set a new one in MOGPLEX_TOKENS and restart the board.",
            )
        )
    return board(now, runs=runs, sandboxes=boxes, sources=sources)


def publish(composed: dict[str, Any], *, heartbeat: float | None = None) -> str:
    """Write a composed board (with its fetch times, as the poller does) and the poller heartbeat; its version."""
    version = compose.board_publish(composed)
    snapshots.heartbeat_write(time.time() if heartbeat is None else heartbeat)
    return version


def run_record(
    run_id: str, *, now: float | None = None, events: int | list[dict[str, Any]] = 3, **fields: Any
) -> dict[str, Any]:
    """A run record as the poller writes it; ``events`` is a count of plain events or the events."""
    now = time.time() if now is None else now
    record: dict[str, Any] = {
        "run_id": run_id,
        "source": "demo",
        "fetched_at": now - 2,
        "lookup": "found",
        "run": {
            "run_id": run_id,
            "status": "success",
            "repo_id": "repo-1",
            "sandbox_record_id": SANDBOX_UP,
            "harness": "claude-code",
            "branch": {"base": "main", "working": "agent/x", "create_branch": True},
            "created_at": iso(now - 300),
            "updated_at": iso(now - 10),
            "error": None,
        },
        "events": [
            {
                "id": str(uuid.uuid4()),
                "type": "tool_started",
                "tool_name": "bash",
                "message": f"step {n}",
                "payload": {"command": f"make test {n}"},
                "created_at": iso(now - 100 + n),
            }
            for n in range(events if isinstance(events, int) else 0)
        ]
        if isinstance(events, int)
        else events,
        "event_count": events if isinstance(events, int) else len(events),
        "events_truncated": False,
        "pr_url": "https://github.com/acme/web/pull/7",
        "error_kind": None,
        "error_at": None,
    }
    record.update(fields)
    return record
