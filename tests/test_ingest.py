"""The ingest endpoint a CI job posts its runs to."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from dashboard.models import TrackedRun

RUN = "3f2b8c1e-5d4a-4b6c-9e8f-0a1b2c3d4e5f"
OTHER = "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d"
INGEST_TOKEN = "ingest-secret-for-tests-0123456789"
HINT = "paste the UUID from `mogplex run --json` (its runId) or the run's web address."

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def ingest_enabled(settings: Settings) -> None:
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
