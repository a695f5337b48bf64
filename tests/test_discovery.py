"""Run discovery: every form of run id people paste or pipe, and tracking them."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest

from dashboard.discovery import (
    InvalidRunInput,
    RunRef,
    run_id_parse,
    run_ids_read,
    run_refs_read,
    run_track,
    runs_from_cli_json,
)
from dashboard.models import TrackedRun

RUN = "3f2b8c1e-5d4a-4b6c-9e8f-0a1b2c3d4e5f"
RUN_UUID = UUID(RUN)
OTHER = "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d"
THIRD = "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
HINT = "paste the UUID from `mogplex run --json` (its runId) or the run's web address."
JSON_HINT = "feed the output of `mogplex run --json` (one object, or one per line)."


def cli_run(run_id: str, **extra: Any) -> dict[str, Any]:
    """What `mogplex run --json` prints: a flat RunDetail plus `replayed`."""
    return {
        "runId": run_id,
        "aiCallId": OTHER,
        "repoId": THIRD,
        "status": "pending",
        "harness": "codex",
        "branch": {"base": "main", "working": "main", "createBranch": False},
        "eventsUrl": f"/api/v1/mogplex/runs/{run_id}/events",
        "replayed": False,
        **extra,
    }


@pytest.mark.parametrize(
    "text",
    [
        RUN,
        RUN.upper(),
        f"  {RUN}\n",
        f"https://www.mogplex.com/runs/{RUN}",
        f"https://www.mogplex.com/runs/{RUN}/",
        f"https://www.mogplex.com/runs/{RUN}?tab=events#latest",
        f"http://127.0.0.1:8765/api/v1/mogplex/runs/{RUN}",
        f"https://mogplex.com/api/v1/mogplex/runs/{RUN.upper()}/",
    ],
)
def test_run_id_parse_accepts_ids_and_run_urls(text: str) -> None:
    assert run_id_parse(text) == RUN_UUID


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", f"'abc' is not a Mogplex run id or run URL; {HINT}"),
        ("", f"'' is not a Mogplex run id or run URL; {HINT}"),
        (RUN[:-1], f"'{RUN[:-1]}' is not a Mogplex run id or run URL; {HINT}"),
        (RUN.replace("-", ""), f"'{RUN.replace('-', '')}' is not a Mogplex run id or run URL; {HINT}"),
        (
            f"https://www.mogplex.com/runs/{RUN}/events",
            f"'https://www.mogplex.com/runs/{RUN}/events' is not a Mogplex run id or run URL; {HINT}",
        ),
        (
            f"ftp://www.mogplex.com/runs/{RUN}",
            f"'ftp://www.mogplex.com/runs/{RUN}' is not a Mogplex run id or run URL; {HINT}",
        ),
        (
            f"https://www.mogplex.com/api/v1/mogplex/automations/{OTHER}/runs/{RUN}",
            f"'https://www.mogplex.com/api/v1/mogplex/automations/{OTHER}/runs/{RUN}"[:121]
            + "...' is an automation job run, not an agent run; "
            + HINT,
        ),
        (
            "mog_abcdefghijklmnop",
            "That is a Mogplex token, not a run id; never paste tokens here, and " + HINT,
        ),
    ],
)
def test_run_id_parse_rejects_anything_else_with_one_sentence(text: str, message: str) -> None:
    with pytest.raises(InvalidRunInput) as caught:
        run_id_parse(text)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


def test_a_pasted_token_is_never_repeated_back() -> None:
    with pytest.raises(InvalidRunInput) as caught:
        run_id_parse("  mog_secretsecretsecret ")
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (json.dumps(cli_run(RUN)), [RUN_UUID]),
        (json.dumps(cli_run(RUN), indent=2), [RUN_UUID]),
        (json.dumps(cli_run(RUN)) + "\n" + json.dumps(cli_run(OTHER)) + "\n", [RUN_UUID, UUID(OTHER)]),
        (json.dumps({"ok": True, "data": cli_run(RUN)}), [RUN_UUID]),
        (json.dumps({"ok": True, "data": {"run": cli_run(RUN)}}), [RUN_UUID]),
        (json.dumps({"run_id": RUN.upper()}), [RUN_UUID]),
        (json.dumps({"run_ids": [RUN, OTHER]}), [RUN_UUID, UUID(OTHER)]),
        (json.dumps([cli_run(RUN), OTHER]), [RUN_UUID, UUID(OTHER)]),
    ],
)
def test_runs_from_cli_json_reads_what_the_cli_prints(text: str, expected: list[UUID]) -> None:
    assert runs_from_cli_json(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "{not json",
            f"Line 1 is not valid JSON (Expecting property name enclosed in double quotes); {JSON_HINT}",
        ),
        (
            json.dumps(cli_run(RUN)) + '\n{"runId": \n',
            f"Line 3 is not valid JSON (Expecting value); {JSON_HINT}",
        ),
        ('{"status": "pending"}', f"The JSON on line 1 has no runId; {JSON_HINT}"),
        (
            json.dumps(cli_run(RUN)) + "\n" + json.dumps({"id": OTHER}),
            f"The JSON on line 2 has no runId; {JSON_HINT}",
        ),
        (
            json.dumps({"runId": "abc"}),
            f"The JSON on line 1: 'abc' is not a Mogplex run id or run URL; {HINT}",
        ),
        (json.dumps({"runId": 7}), f"The JSON on line 1 has a run id that is not a string; {JSON_HINT}"),
        (
            json.dumps({"ok": False, "error": {"code": "RATE_LIMITED", "message": "slow down"}}),
            f"The JSON on line 1 is a Mogplex error answer, not a run; {JSON_HINT}",
        ),
        ("42", f"The JSON on line 1 is not a JSON object with a runId; {JSON_HINT}"),
        (
            json.dumps({"run_ids": []}),
            "The JSON on line 1 has run_ids that is not a non-empty list of run ids.",
        ),
        ("   \n", f"No run id was given; {HINT}"),
    ],
)
def test_runs_from_cli_json_names_the_bad_line(text: str, message: str) -> None:
    with pytest.raises(InvalidRunInput) as caught:
        runs_from_cli_json(text)
    assert str(caught.value) == message


def test_run_ids_read_takes_one_id_or_url_per_line() -> None:
    text = f"# runs from last night\n{RUN}\n\n  https://www.mogplex.com/runs/{OTHER}/  \n"
    assert run_ids_read(text) == [RUN_UUID, UUID(OTHER)]


def test_run_ids_read_names_the_bad_line_among_several() -> None:
    with pytest.raises(InvalidRunInput) as caught:
        run_ids_read(f"{RUN}\nnope\n")
    assert str(caught.value) == f"Line 2: 'nope' is not a Mogplex run id or run URL; {HINT}"


def test_run_ids_read_reads_cli_json_too() -> None:
    assert run_ids_read(json.dumps(cli_run(RUN)) + "\n") == [RUN_UUID]


@pytest.mark.django_db
def test_run_track_creates_new_rows_waiting_for_lookup() -> None:
    result = run_track(run_ids=[RUN, f"https://www.mogplex.com/runs/{OTHER}"], via=TrackedRun.Via.COMMAND)

    assert result.tracked == (RUN_UUID, UUID(OTHER))
    assert result.already_tracked == ()
    rows = {row.run_id: row for row in TrackedRun.objects.all()}
    assert set(rows) == {RUN_UUID, UUID(OTHER)}
    assert all(row.via == "command" and row.lookup == "new" for row in rows.values())


@pytest.mark.django_db
def test_tracking_again_is_reported_and_never_duplicates() -> None:
    run_track(run_ids=[RUN], via=TrackedRun.Via.FORM)

    result = run_track(run_ids=[RUN.upper(), OTHER, OTHER], via=TrackedRun.Via.INGEST)

    assert result.tracked == (UUID(OTHER),)
    assert result.already_tracked == (RUN_UUID,)
    assert TrackedRun.objects.count() == 2
    assert TrackedRun.objects.get(run_id=RUN).via == "form"


@pytest.mark.django_db
def test_tracking_a_run_nobody_owned_looks_it_up_again() -> None:
    TrackedRun.objects.create(run_id=RUN, via="form", lookup=TrackedRun.Lookup.NOT_FOUND)

    result = run_track(run_ids=[RUN], via=TrackedRun.Via.COMMAND)

    assert result.already_tracked == (RUN_UUID,)
    assert TrackedRun.objects.get(run_id=RUN).lookup == "new"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "batch",
    [
        [RUN, "abc", OTHER],
        [RUN, OTHER, f"https://www.mogplex.com/sandboxes/{THIRD}"],
        [],
    ],
)
def test_a_bad_batch_changes_nothing(batch: list[str]) -> None:
    run_track(run_ids=[THIRD], via=TrackedRun.Via.FORM)
    before = list(TrackedRun.objects.values_list("run_id", "lookup"))

    with pytest.raises(InvalidRunInput):
        run_track(run_ids=batch, via=TrackedRun.Via.COMMAND)

    assert list(TrackedRun.objects.values_list("run_id", "lookup")) == before


@pytest.mark.django_db
def test_run_track_rejects_an_unknown_channel() -> None:
    with pytest.raises(ValueError, match="via must be one of form, command, ingest"):
        run_track(run_ids=[RUN], via="email")
    assert TrackedRun.objects.count() == 0


@pytest.mark.django_db
def test_the_repo_a_registration_names_is_kept_for_the_lookup() -> None:
    text = json.dumps(cli_run(RUN)) + "\n" + json.dumps({"run_ids": [OTHER], "repo_id": RUN}) + "\n"
    assert run_refs_read(text) == [RunRef(RUN_UUID, UUID(THIRD)), RunRef(UUID(OTHER), RUN_UUID)]

    run_track(run_ids=run_refs_read(text), via=TrackedRun.Via.INGEST)

    assert TrackedRun.objects.get(run_id=RUN).repo_id == UUID(THIRD)
    assert TrackedRun.objects.get(run_id=OTHER).repo_id == RUN_UUID


def test_a_repo_id_that_is_not_a_uuid_is_only_a_missing_hint() -> None:
    assert run_refs_read(json.dumps(cli_run(RUN, repoId="acme/api"))) == [RunRef(RUN_UUID, None)]


@pytest.mark.django_db
def test_tracking_again_with_a_repo_fills_it_in() -> None:
    run_track(run_ids=[RUN], via=TrackedRun.Via.FORM)
    run_track(run_ids=[RunRef(RUN_UUID, UUID(THIRD))], via=TrackedRun.Via.INGEST, source="ada")
    row = TrackedRun.objects.get(run_id=RUN)
    assert (row.repo_id, row.source_hint, row.via) == (UUID(THIRD), "ada", "form")


@pytest.mark.django_db
def test_a_named_source_is_kept_and_an_unknown_one_refused_with_one_sentence() -> None:
    run_track(run_ids=[RUN], via=TrackedRun.Via.COMMAND, source="ben")
    assert TrackedRun.objects.get(run_id=RUN).source_hint == "ben"

    with pytest.raises(InvalidRunInput) as caught:
        run_track(run_ids=[OTHER], via=TrackedRun.Via.COMMAND, source="carol")
    assert str(caught.value) == (
        "No source is named 'carol'; name one of the configured sources (demo, ada, ben, cleo, dev, eve) or leave it out."
    )
    assert not TrackedRun.objects.filter(run_id=OTHER).exists()
