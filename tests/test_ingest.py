"""The ingest endpoint a CI job posts its runs to."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest
import redis
from django.test import Client
from pytest_django.fixtures import Settings

from dashboard.models import TrackedRun

RUN = "3f2b8c1e-5d4a-4b6c-9e8f-0a1b2c3d4e5f"
OTHER = "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d"
INGEST_TOKEN = "ingest-secret-for-tests-0123456789"
HINT = "paste the UUID from `mogplex run --json` (its runId) or the run's web address."

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def ingest_enabled(settings: Settings, redis_db: redis.Redis) -> None:
    """Ingest on, and an empty Redis: the hourly count of new runs starts at zero."""
    settings.BOARD_INGEST_TOKEN = INGEST_TOKEN


def post(client: Client, body: str | bytes, *, token: str | None = INGEST_TOKEN, **headers: Any) -> Any:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post("/ingest/runs", body, content_type="application/json", headers=headers)


def test_a_ci_job_registers_the_run_it_started(client: Client) -> None:
    body = json.dumps({"runId": RUN, "status": "pending", "harness": "codex", "replayed": False})

    response = post(client, body)

    assert response.status_code == 201
    assert response.json()["tracked"] == [RUN]
    assert response.json()["already_tracked"] == []
    row = TrackedRun.objects.get(run_id=RUN)
    assert (row.via, row.lookup) == ("ingest", "new")


def test_ndjson_envelope_and_run_ids_bodies_are_accepted(client: Client) -> None:
    ndjson = json.dumps({"runId": RUN}) + "\n" + json.dumps({"ok": True, "data": {"runId": OTHER}}) + "\n"
    assert post(client, ndjson).json()["tracked"] == [RUN, OTHER]

    response = post(client, json.dumps({"run_ids": [OTHER.upper(), RUN]}))

    assert response.status_code == 201
    assert response.json()["tracked"] == []
    assert response.json()["already_tracked"] == [OTHER, RUN]
    assert TrackedRun.objects.count() == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "{oops",
            "Line 1 is not valid JSON (Expecting property name enclosed in double quotes); "
            "feed the output of `mogplex run --json` (one object, or one per line).",
        ),
        (
            json.dumps({"status": "pending"}),
            "The JSON on line 1 has no runId; feed the output of `mogplex run --json` (one object, or one per line).",
        ),
        (
            json.dumps({"run_ids": [RUN, "../../admin"]}),
            f"The JSON on line 1: '../../admin' is not a Mogplex run id or run URL; {HINT}",
        ),
        ("", f"No run id was given; {HINT}"),
        (b"\xff\xfe", "The body is not UTF-8 text; send the JSON that `mogplex run --json` prints."),
    ],
)
def test_bad_bodies_are_refused_with_one_sentence_and_change_nothing(
    client: Client, body: str | bytes, message: str
) -> None:
    post(client, json.dumps({"runId": OTHER}))

    response = post(client, body)

    assert response.status_code == 400
    assert response.json() == {"error": message}
    assert list(TrackedRun.objects.values_list("run_id", flat=True)) == [UUID(OTHER)]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {INGEST_TOKEN}"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {INGEST_TOKEN}x"},
    ],
)
def test_missing_or_wrong_token_gets_the_same_401(client: Client, headers: dict[str, str]) -> None:
    response = post(client, json.dumps({"runId": RUN}), token=None, **headers)

    assert response.status_code == 401
    assert response.json() == {"error": "Send the board's ingest token as 'Authorization: Bearer <token>'."}
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "wrong-token" not in response.content.decode()
    assert TrackedRun.objects.count() == 0


def test_empty_ingest_token_disables_ingest(client: Client, settings: Settings) -> None:
    settings.BOARD_INGEST_TOKEN = ""

    response = post(client, json.dumps({"runId": RUN}), token="")

    assert response.status_code == 403
    assert response.json() == {
        "error": "Ingest is disabled on this board; set BOARD_INGEST_TOKEN to enable it."
    }
    assert TrackedRun.objects.count() == 0


def test_get_is_not_allowed(client: Client) -> None:
    response = client.get("/ingest/runs", headers={"Authorization": f"Bearer {INGEST_TOKEN}"})

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json() == {"error": "Use POST to send runs to /ingest/runs."}


def test_oversized_body_is_refused(client: Client) -> None:
    lines = "\n".join(json.dumps({"runId": RUN, "note": "x" * 200}) for _ in range(400))
    assert len(lines) > 64 * 1024

    response = post(client, lines)

    assert response.status_code == 413
    assert response.json() == {"error": "The body is larger than 64 KB; send fewer runs at once."}
    assert TrackedRun.objects.count() == 0


def test_the_token_is_never_echoed(client: Client) -> None:
    for response in (post(client, "{oops"), post(client, json.dumps({"runId": RUN}))):
        assert INGEST_TOKEN not in response.content.decode()
        assert all(INGEST_TOKEN not in value for value in response.headers.values())


def _ids(n: int, start: int = 0) -> list[str]:
    return [str(UUID(int=start + i + 1)) for i in range(n)]


def test_a_flood_of_new_runs_in_one_request_is_refused_with_429(client: Client, settings: Settings) -> None:
    settings.BOARD_INGEST_MAX_RUNS = 100
    response = post(client, json.dumps({"run_ids": _ids(300)}))

    assert response.status_code == 429
    assert response.json() == {
        "error": "This request would register 300 new runs, more than the 100 a team plausibly starts at once "
        "(BOARD_INGEST_MAX_RUNS); nothing was tracked. Check the CI job, or send them in smaller batches."
    }
    assert response["Retry-After"] == "60"
    assert TrackedRun.objects.count() == 0
    # Runs the board already tracks do not count: re-sending a batch is never refused.
    assert post(client, json.dumps({"run_ids": _ids(100)})).status_code == 201
    assert post(client, json.dumps({"run_ids": _ids(100) + _ids(50, 100)})).status_code == 201


def test_more_new_runs_in_an_hour_than_a_team_starts_are_refused(client: Client, settings: Settings) -> None:
    settings.BOARD_INGEST_RUNS_PER_HOUR = 150
    assert post(client, json.dumps({"run_ids": _ids(100)})).status_code == 201

    response = post(client, json.dumps({"run_ids": _ids(60, 100)}))

    assert response.status_code == 429
    message = response.json()["error"]
    assert message.startswith(
        "Ingest has registered 100 new runs in the last hour; 60 more would pass the 150 a team plausibly "
        "starts (BOARD_INGEST_RUNS_PER_HOUR), so nothing was tracked. Check the CI job that sends them, "
        "or try again in "
    )
    assert 3500 <= int(response["Retry-After"]) <= 3600
    assert TrackedRun.objects.count() == 100
    assert post(client, json.dumps({"run_ids": _ids(50, 100)})).status_code == 201


def test_the_repo_and_a_named_source_are_kept_for_the_lookup(client: Client) -> None:
    body = json.dumps({"runId": RUN, "repoId": OTHER, "status": "pending"})

    response = client.post(
        "/ingest/runs?source=ada",
        body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
    )

    assert response.status_code == 201
    row = TrackedRun.objects.get(run_id=RUN)
    assert (row.repo_id, row.source_hint) == (UUID(OTHER), "ada")


def test_an_unknown_source_is_refused_and_changes_nothing(client: Client) -> None:
    response = client.post(
        "/ingest/runs?source=nobody",
        json.dumps({"runId": RUN}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
    )

    assert response.status_code == 400
    assert response.json()["error"].startswith(
        "No source is named 'nobody'; name one of the configured sources"
    )
    assert TrackedRun.objects.count() == 0
