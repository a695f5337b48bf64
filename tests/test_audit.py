"""The session-end read-only audit (tests/audit.py) tells reads from writes and board tokens from writers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.audit import offence

RUN = "3f2a9c1e-0000-4000-8000-000000000000"


def _record(
    method: str, path: str, token_name: str, status: int = 200, key: str | None = None
) -> dict[str, Any]:
    return {
        "method": method,
        "path": path,
        "token_name": token_name,
        "status": status,
        "idempotency_key": key,
    }


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/mogplex/repos",
        "/api/v1/mogplex/sandboxes",
        f"/api/v1/mogplex/sandboxes/{RUN}/logs",
        f"/api/v1/mogplex/runs/{RUN}",
        f"/api/v1/mogplex/runs/{RUN}/events",
        "/api/auth/user",
    ],
)
def test_a_board_token_reading_the_allow_list_is_fine(path: str) -> None:
    assert offence(_record("GET", path, "demo")) is None


@pytest.mark.parametrize(
    "record",
    [
        _record("POST", "/api/v1/mogplex/runs", "demo", status=400),
        _record("GET", "/api/v1/mogplex/repos", "alice", key="job-1"),
        _record("GET", "/api/v1/mogplex/runs", "bob", status=405),
        _record("GET", "/api/v1/mogplex/runs/not-a-uuid", "alice", status=500),
    ],
)
def test_a_board_token_writing_or_leaving_the_allow_list_is_an_offence(record: dict[str, Any]) -> None:
    assert offence(record)


def test_only_writers_may_get_a_write_through() -> None:
    assert offence(_record("POST", "/api/v1/mogplex/runs", "ci", status=201, key="k")) is None
    assert offence(_record("POST", "/api/v1/mogplex/runs", "writer", status=201)) is None
    assert offence(_record("POST", "/api/v1/mogplex/runs", "launcher", status=201))
    # A contract test's deliberately refused request is not the board's concern.
    assert offence(_record("POST", "/api/v1/mogplex/runs", "reader", status=403)) is None
