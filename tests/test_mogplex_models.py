"""Parsing what Mogplex sends: literal JSON in, typed records out, tolerant where the contract is loose."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dashboard.mogplex.errors import ProtocolError
from dashboard.mogplex.failures import failure_reason
from dashboard.mogplex.models import (
    AI_CALL_EVENTS_KEPT,
    AI_CALL_TEXT_CHARS,
    AUTO_PAUSE_DECISION_CODES,
    EVENT_TYPES,
    RUN_STATUSES,
    SANDBOX_STATUSES,
    TERMINAL_STATUSES,
    UNREADABLE,
    AccountUser,
    Agent,
    AutomationDetail,
    AutomationRunSummary,
    JobRunDetail,
    Model,
    Repo,
    RunDetail,
    RunEvents,
    RunOutcome,
    Sandbox,
    SandboxLogs,
    automation_cursor_valid,
    decode_json,
    error_message,
    parse_agents,
    parse_auth_user,
    parse_automation,
    parse_automations,
    parse_envelope,
    parse_job_run,
    parse_job_runs,
    parse_models,
    parse_repos,
    parse_run,
    parse_run_detail,
    parse_run_event,
    parse_run_events,
    parse_sandbox_logs,
    parse_sandboxes,
    parse_timestamp,
)
from tests.hostile import CORPUS

RUN_ID = "3F2A9C1E-5B6D-4E7F-8A9B-0C1D2E3F4A5B"
RUN: dict[str, Any] = {
    "runId": RUN_ID,
    "aiCallId": "0a1b2c3d-0000-4000-8000-000000000001",
    "repoId": "0a1b2c3d-0000-4000-8000-000000000002",
    "sandboxRecordId": "0a1b2c3d-0000-4000-8000-000000000003",
    "sandboxId": "pending",
    "harness": "codex",
    "status": "streaming",
    "branch": {"base": "main", "working": "mogplex/external/1a2b3c4d-5e6f7a8b", "createBranch": True},
    "rootDirectory": None,
    "eventsUrl": f"/api/v1/mogplex/runs/{RUN_ID}/events",
    "cancelUrl": f"/api/v1/mogplex/runs/{RUN_ID}/cancel",
    "createdAt": "2026-08-03T15:00:20.638+00:00",
    "updatedAt": "2026-08-03T15:02:01Z",
    "error": None,
    "runtime": {"provider": "trigger", "runId": "run_abc123"},
}


def event(n: int, type_: str = "log", payload: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "type": type_,
        "toolName": None,
        "message": f"event {n}",
        "payload": payload if payload is not None else {},
        "createdAt": f"2026-08-03T15:00:{n % 60:02d}.1+00:00",
        **extra,
    }


def delivery(n: int, url: object, message: str = "Pull request ready") -> dict[str, Any]:
    payload = {"stage": "git_delivery", "pull_request_url": url, "changed": True, "branch": "feature"}
    return event(n, "log", payload, message=message)


def test_run_events_parse_every_field() -> None:
    data = {"run": RUN, "events": [event(1, "started"), event(2, "tool_started", toolName="bash")]}
    server_date = datetime(2026, 8, 3, 15, 3, tzinfo=UTC)

    result = parse_run_events(data, server_date=server_date)

    run = result.run
    assert run.run_id == RUN_ID.lower()
    assert run.status == "streaming"
    assert not run.is_terminal
    assert run.is_active
    assert run.ai_call_id == "0a1b2c3d-0000-4000-8000-000000000001"
    assert run.sandbox_id == "pending"
    assert run.harness == "codex"
    assert run.branch.base == "main"
    assert run.branch.working == "mogplex/external/1a2b3c4d-5e6f7a8b"
    assert run.branch.create_branch is True
    assert run.events_url == f"/api/v1/mogplex/runs/{RUN_ID}/events"
    assert run.created_at == datetime(2026, 8, 3, 15, 0, 20, 638000, tzinfo=UTC)
    assert run.updated_at == datetime(2026, 8, 3, 15, 2, 1, tzinfo=UTC)
    assert run.runtime_provider == "trigger"
    assert run.runtime_run_id == "run_abc123"
    assert [e.type for e in result.events] == ["started", "tool_started"]
    assert result.events[1].tool_name == "bash"
    assert result.events[0].message == "event 1"
    assert result.server_date == server_date


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-08-03T15:00:20.638+00:00", datetime(2026, 8, 3, 15, 0, 20, 638000, tzinfo=UTC)),
        ("2026-08-03T15:00:20+00:00", datetime(2026, 8, 3, 15, 0, 20, tzinfo=UTC)),
        ("2026-08-03T15:00:20Z", datetime(2026, 8, 3, 15, 0, 20, tzinfo=UTC)),
        ("2026-08-03T15:00:20.1Z", datetime(2026, 8, 3, 15, 0, 20, 100000, tzinfo=UTC)),
        ("2026-08-03T15:00:20.12+00:00", datetime(2026, 8, 3, 15, 0, 20, 120000, tzinfo=UTC)),
        ("2026-08-03T15:00:20.12345+00:00", datetime(2026, 8, 3, 15, 0, 20, 123450, tzinfo=UTC)),
        ("2026-08-03T15:00:20.123456Z", datetime(2026, 8, 3, 15, 0, 20, 123456, tzinfo=UTC)),
        ("2026-08-03T15:00:20.123456+00:00", datetime(2026, 8, 3, 15, 0, 20, 123456, tzinfo=UTC)),
        ("2026-08-03T15:00:20.638Z", datetime(2026, 8, 3, 15, 0, 20, 638000, tzinfo=UTC)),
        ("2026-08-03T15:00:20Z", datetime(2026, 8, 3, 15, 0, 20, tzinfo=UTC)),
        ("2026-08-03T17:00:20+02:00", datetime(2026, 8, 3, 15, 0, 20, tzinfo=UTC)),
        ("2026-08-03T15:00:20", datetime(2026, 8, 3, 15, 0, 20, tzinfo=UTC)),
        # Past the calendar once moved to UTC.
        ("9999-12-31T23:59:59-05:00", None),
        ("0001-01-01T00:00:00+05:00", None),
        ("yesterday", None),
        ("", None),
        (1754233220, None),
        (None, None),
    ],
)
def test_timestamps_in_every_form_the_contract_allows(text: object, expected: datetime | None) -> None:
    parsed = parse_timestamp(text)

    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() == timedelta(0)


def test_unknown_statuses_and_event_types_are_kept_as_they_are() -> None:
    data = {"run": {**RUN, "status": "paused_for_review"}, "events": [event(1, "stream_started")]}

    result = parse_run_events(data)

    assert result.run.status == "paused_for_review"
    assert not result.run.is_terminal
    assert not result.run.is_active
    assert result.events[0].type == "stream_started"


@pytest.mark.parametrize("status", RUN_STATUSES)
def test_terminal_is_exactly_success_failed_cancelled(status: str) -> None:
    run = parse_run_detail({**RUN, "status": status})

    assert run.is_terminal == (status in {"success", "failed", "cancelled"})
    assert set(RUN_STATUSES) >= TERMINAL_STATUSES


def test_null_optional_fields_become_none() -> None:
    nulls = {key: None for key in RUN if key not in {"runId", "status"}}

    run = parse_run_detail({"runId": RUN_ID, "status": "pending", **nulls})

    assert run.ai_call_id is None
    assert run.sandbox_record_id is None
    assert run.branch.base is None
    assert run.branch.create_branch is None
    assert run.created_at is None
    assert run.runtime_provider is None


def test_missing_optional_fields_become_none() -> None:
    run = parse_run_detail({"runId": RUN_ID, "status": "pending"})

    assert run == RunDetail(run_id=RUN_ID.lower(), status="pending")


def test_wrong_types_for_optional_fields_become_none_not_a_crash() -> None:
    odd = {
        **RUN,
        "sandboxId": 12,
        "harness": ["codex"],
        "branch": "main",
        "createdAt": 1754233220,
        "updatedAt": "not a time",
        "error": {"message": "boom"},
        "runtime": "trigger",
    }
    odd_event = {**event(1), "toolName": 7, "message": False, "payload": "a string", "createdAt": []}

    result = parse_run_events({"run": odd, "events": [odd_event]})

    run = result.run
    assert (run.sandbox_id, run.harness, run.error) == (None, None, None)
    assert run.branch.working is None
    assert (run.created_at, run.updated_at) == (None, None)
    assert run.runtime_run_id is None
    only = result.events[0]
    assert (only.tool_name, only.message, only.created_at) == (None, None, None)
    assert only.payload == {}


def test_extra_fields_are_ignored() -> None:
    data = {
        "run": {**RUN, "prompt": "new field", "cost": 1.5},
        "events": [{**event(1), "extra": [1]}],
        "more": 1,
    }

    result = parse_run_events(data)

    assert result.run == parse_run_detail(RUN)
    assert result.events[0] == parse_run_events({"run": RUN, "events": [event(1)]}).events[0]


@pytest.mark.parametrize(
    ("parse", "data", "missing"),
    [
        (parse_run_detail, {k: v for k, v in RUN.items() if k != "runId"}, "without 'runId'"),
        (parse_run_detail, {**RUN, "runId": None}, "without 'runId'"),
        (parse_run_detail, {k: v for k, v in RUN.items() if k != "status"}, "without 'status'"),
        (parse_run_detail, {**RUN, "status": ["streaming"]}, "with 'status' as a list, not text"),
        (parse_run_event, {k: v for k, v in event(1).items() if k != "id"}, "without 'id'"),
        (parse_run_events, {"run": RUN}, "events"),
        (parse_run_events, {"events": []}, "'run' as null, not a JSON object"),
    ],
)
def test_a_record_without_its_identity_or_an_answer_without_its_shape_is_a_protocol_error(
    parse: Any, data: dict[str, Any], missing: str
) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse(data)

    assert missing in str(raised.value)
    assert raised.value.kind == "protocol"


@pytest.mark.parametrize(
    ("run", "problem"),
    [
        ({**RUN, "status": ["streaming"]}, "with 'status' as a list, not text"),
        ({**RUN, "status": None}, "without 'status'"),
        ({k: v for k, v in RUN.items() if k != "runId"}, "without 'runId'"),
        ({**RUN, "runId": {"id": RUN_ID}}, "with 'runId' as a JSON object, not text"),
    ],
)
def test_an_unreadable_run_in_its_events_answer_becomes_a_placeholder_and_its_events_still_count(
    run: dict[str, Any], problem: str
) -> None:
    result = parse_run_events({"run": run, "events": [event(1), event(2)]})

    assert result.run.status == UNREADABLE
    assert result.run.error == f"Mogplex sent this run {problem}."
    assert result.run.run_id in ("", RUN_ID.lower())
    assert [e.message for e in result.events] == ["event 1", "event 2"]


def test_an_unreadable_event_costs_only_its_own_place_in_the_timeline() -> None:
    poisoned = [
        {**event(2), "id": None},
        {**event(3), "type": ["log"]},
        "not an event",
        {**event(5), "id": 12345, "createdAt": "not a date", "payload": None},
    ]

    result = parse_run_events({"run": RUN, "events": [event(1), *poisoned, event(6)]})

    assert [(e.id[-1:] if e.type != UNREADABLE else e.id, e.type) for e in result.events] == [
        ("1", "log"),
        ("unreadable-1", UNREADABLE),
        ("00000000-0000-4000-8000-000000000003", UNREADABLE),
        ("unreadable-3", UNREADABLE),
        ("5", "log"),
        ("6", "log"),
    ]
    assert result.events[1].message == "Mogplex sent this event without 'id'."
    assert result.events[2].message == "Mogplex sent this event with 'type' as a list, not text."
    assert result.events[3].message == "Mogplex sent this event as text, not a JSON object."
    assert result.events[4].created_at is None, "an id that is a number is read; a bad date is no date"
    assert result.run.status == "streaming"


def test_run_endpoint_data_and_flat_cli_output_parse_alike() -> None:
    flat_cli_output = {**RUN, "replayed": False}

    assert parse_run({"run": RUN}) == parse_run_detail(flat_cli_output)


def test_pr_url_comes_from_the_last_git_delivery_log_with_an_http_url() -> None:
    events = [
        event(1, "started"),
        delivery(2, "https://github.com/acme/app/pull/1"),
        delivery(3, "https://github.com/acme/app/pull/2"),
        # Not a log event, though its payload looks like one.
        event(4, "finished", {"stage": "git_delivery", "pull_request_url": "https://example.com/wrong"}),
        # A log event of another stage.
        event(5, "log", {"stage": "install", "pull_request_url": "https://example.com/wrong"}),
        # A later delivery without a URL does not hide the earlier one.
        delivery(6, None, message="No code changes to deliver"),
        delivery(7, "javascript:alert(1)"),
    ]

    result = parse_run_events({"run": {**RUN, "status": "success"}, "events": events})

    assert result.pr_url() == "https://github.com/acme/app/pull/2"


@pytest.mark.parametrize(
    "url", [None, "", "javascript:alert(1)", "ftp://github.com/x", "github.com/acme/app/pull/1", 5]
)
def test_no_pr_url_without_an_http_one(url: object) -> None:
    result = parse_run_events({"run": RUN, "events": [delivery(1, url)]})

    assert result.pr_url() is None


def test_no_pr_url_when_no_changes_were_delivered() -> None:
    result = parse_run_events({"run": RUN, "events": [delivery(1, None, "No code changes to deliver")]})

    assert result.pr_url() is None


def test_truncated_when_the_feed_is_as_long_as_the_limit() -> None:
    full = parse_run_events({"run": RUN, "events": [event(n) for n in range(200)]})
    short = parse_run_events({"run": RUN, "events": [event(n) for n in range(199)]})

    assert full.truncated(200)
    assert not short.truncated(200)
    assert short.truncated(199)


def test_possibly_stale_after_six_hours_without_an_update() -> None:
    run = parse_run_detail(RUN)  # streaming, updated 15:02:01
    finished = parse_run_detail({**RUN, "status": "failed"})

    assert not run.possibly_stale(datetime(2026, 8, 3, 21, 2, tzinfo=UTC))
    assert run.possibly_stale(datetime(2026, 8, 3, 21, 3, tzinfo=UTC))
    assert not finished.possibly_stale(datetime(2026, 8, 10, tzinfo=UTC))


def test_repos() -> None:
    data = {
        "repos": [
            {
                "id": "0A1B2C3D-0000-4000-8000-000000000002",
                "full_name": "acme/app",
                "installation_id": 4242,
                "default_branch": "main",
                "root_directory": None,
            },
            {"id": "0a1b2c3d-0000-4000-8000-000000000009", "full_name": "acme/api", "installation_id": None},
            {"id": "0a1b2c3d-0000-4000-8000-000000000010", "full_name": "acme/x", "installation_id": "7"},
        ]
    }

    repos = parse_repos(data)

    assert repos[0] == Repo(
        id="0a1b2c3d-0000-4000-8000-000000000002",
        full_name="acme/app",
        installation_id=4242,
        default_branch="main",
    )
    assert repos[1].installation_id is None
    assert repos[1].default_branch is None
    assert repos[2].installation_id is None


def test_a_repo_that_cannot_be_read_is_left_out_and_the_others_kept() -> None:
    repos = parse_repos(
        {"repos": [{"id": "0a1b2c3d-0000-4000-8000-000000000002"}, {"id": "r-2", "full_name": "acme/app"}]}
    )

    assert [repo.full_name for repo in repos] == ["acme/app"]


SANDBOX: dict[str, Any] = {
    "id": "5A1B2C3D-0000-4000-8000-000000000003",
    "sandbox_id": "pending",
    "repo_id": "0a1b2c3d-0000-4000-8000-000000000002",
    "status": "installing",
    "base_branch": "main",
    "working_branch": "feature",
    "root_directory": None,
    "preview_url": "https://preview.example.com",
    "error": None,
    "created_at": "2026-08-03T15:00:00Z",
    "last_active_at": "2026-08-03T15:05:00.5+00:00",
}


def test_sandboxes_with_known_and_unknown_statuses() -> None:
    data = {
        "sandboxes": [
            SANDBOX,
            {**SANDBOX, "id": "5a1b2c3d-0000-4000-8000-000000000004", "status": "hibernating"},
        ]
    }

    first, second = parse_sandboxes(data)

    assert first.id == "5a1b2c3d-0000-4000-8000-000000000003"
    assert first.sandbox_id == "pending"
    assert first.status in SANDBOX_STATUSES
    assert first.is_active
    assert first.last_active_at == datetime(2026, 8, 3, 15, 5, 0, 500000, tzinfo=UTC)
    assert second.status == "hibernating"
    assert not second.is_active


def test_a_sandbox_that_cannot_be_read_becomes_a_placeholder_with_its_id() -> None:
    data = {
        "sandboxes": [
            {**SANDBOX, "status": ["running"]},
            {**SANDBOX, "id": None, "status": "running"},
            {**SANDBOX, "id": "<script>", "status": None},
            SANDBOX,
        ]
    }

    listed = parse_sandboxes(data)

    assert [(s.id, s.status) for s in listed] == [
        ("5a1b2c3d-0000-4000-8000-000000000003", UNREADABLE),
        ("unreadable-1", UNREADABLE),
        ("unreadable-2", UNREADABLE),
        ("5a1b2c3d-0000-4000-8000-000000000003", "installing"),
    ]
    assert listed[0].error == "Mogplex sent this sandbox with 'status' as a list, not text."
    assert listed[1].error == "Mogplex sent this sandbox without 'id'."
    assert listed[2].error == "Mogplex sent this sandbox without 'status'."


def test_sandbox_logs() -> None:
    data = {
        "sandbox": {**SANDBOX, "install_log": "npm install\nok", "dev_log": None},
        "lifecycle_events": [
            {
                "id": "6a1b2c3d-0000-4000-8000-000000000001",
                "event_type": "auto_pause_decision",
                "decision_code": "idle",
                "worker_run_id": "w-1",
                "payload": {"idleSeconds": 900},
                "created_at": "2026-08-03T15:10:00Z",
            },
            {"id": 17, "event_type": "something_new", "payload": None},
        ],
    }

    logs = parse_sandbox_logs(data)

    assert logs.sandbox.status == "installing"
    assert logs.install_log == "npm install\nok"
    assert logs.dev_log is None
    assert [e.event_type for e in logs.lifecycle_events] == ["auto_pause_decision", "something_new"]
    assert logs.lifecycle_events[0].payload == {"idleSeconds": 900}
    assert logs.lifecycle_events[1].id == "17"
    assert logs.lifecycle_events[1].payload == {}


def test_models_and_agents() -> None:
    models = parse_models(
        {
            "models": [
                {
                    "id": "openai/gpt-5",
                    "provider": "openai",
                    "name": "GPT-5",
                    "contextLength": 400000,
                    "capabilities": ["tools", 3, "vision"],
                    "pricing": {"input": 0.00000125, "output": None},
                },
                {"id": "x/y", "contextLength": "big", "pricing": "free"},
            ]
        }
    )
    agents = parse_agents(
        {
            "agents": [
                {"id": "preset:Reviewer", "name": "Reviewer", "model": "openai/gpt-5", "preset": True},
                {"id": "7A1B2C3D-0000-4000-8000-000000000001", "name": "Mine", "model": "x", "preset": "no"},
            ]
        }
    )

    assert models[0].capabilities == ("tools", "vision")
    assert models[0].pricing_input == pytest.approx(0.00000125)
    assert models[0].pricing_output is None
    assert models[1] == Model(id="x/y")
    assert agents[0] == Agent(id="preset:Reviewer", name="Reviewer", model="openai/gpt-5", preset=True)
    assert agents[1].preset is None


def test_auth_user_tolerates_any_missing_field() -> None:
    full = parse_auth_user(
        {
            "user": {
                "id": "8A1B2C3D-0000-4000-8000-000000000001",
                "email": "ada@example.com",
                "username": "ada",
                "name": "Ada",
                "avatar_url": None,
                "github_username": "ada-gh",
                "github_state": "ready",
                "github_status_label": "Connected",
                "platform_access": {"allowPlatformAi": True, "allowPlatformSandbox": False},
                "vercel": {"connected": False},
            }
        }
    )
    sparse = parse_auth_user({"user": {"username": "bob"}})

    assert full == AccountUser(
        id="8a1b2c3d-0000-4000-8000-000000000001",
        email="ada@example.com",
        username="ada",
        name="Ada",
        github_username="ada-gh",
        github_state="ready",
        github_status_label="Connected",
        allow_platform_ai=True,
        allow_platform_sandbox=False,
    )
    assert sparse == AccountUser(username="bob")
    assert parse_auth_user({"user": None}) is None
    with pytest.raises(ProtocolError):
        parse_auth_user({"users": []})


def test_every_record_survives_a_trip_through_json() -> None:
    run_events = parse_run_events(
        {"run": RUN, "events": [event(1), delivery(2, "https://x.test/pull/1")]},
        server_date=datetime(2026, 8, 3, 15, 3, tzinfo=UTC),
    )
    records: list[Any] = [
        run_events,
        run_events.run,
        run_events.events[1],
        parse_repos({"repos": [{"id": "0a1b2c3d-0000-4000-8000-000000000002", "full_name": "acme/app"}]})[0],
        parse_sandboxes({"sandboxes": [SANDBOX]})[0],
        parse_sandbox_logs(
            {"sandbox": SANDBOX, "lifecycle_events": [{"id": "1", "event_type": "tab_attached"}]}
        ),
        parse_models(
            {"models": [{"id": "m", "capabilities": ["tools"], "pricing": {"input": 1, "output": 2}}]}
        )[0],
        parse_agents({"agents": [{"id": "preset:A", "preset": True}]})[0],
        parse_auth_user({"user": {"email": "a@example.com", "platform_access": {"allowPlatformAi": True}}}),
    ]
    classes = [
        RunEvents,
        RunDetail,
        type(run_events.events[1]),
        Repo,
        Sandbox,
        SandboxLogs,
        Model,
        Agent,
        AccountUser,
    ]

    for record, cls in zip(records, classes, strict=True):
        stored = json.loads(json.dumps(record.to_dict()))
        assert cls.from_dict(stored) == record

    assert run_events.to_dict()["run"]["created_at"] == "2026-08-03T15:00:20.638000+00:00"
    assert (
        RunEvents.from_dict(json.loads(json.dumps(run_events.to_dict()))).pr_url() == "https://x.test/pull/1"
    )


def test_payloads_are_copied_not_shared_with_the_input() -> None:
    raw = event(1, "log", {"stage": "git_delivery", "nested": {"a": 1}})
    original = copy.deepcopy(raw)

    parsed = parse_run_events({"run": RUN, "events": [raw]})
    raw["payload"]["stage"] = "changed"

    assert parsed.events[0].payload["stage"] == original["payload"]["stage"]


def test_event_types_are_the_contracts() -> None:
    assert set(EVENT_TYPES) == {
        "started",
        "status_changed",
        "tool_started",
        "tool_finished",
        "cancel_requested",
        "cancelled",
        "finished",
        "failed",
        "log",
    }


# -- envelopes ----------------------------------------------------------------------


def test_envelope_gives_its_data() -> None:
    assert parse_envelope(b'{"ok": true, "data": {"repos": []}}', 200) == {"repos": []}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"<html><body>Bad gateway</body></html>", 200),
        (b"", 200),
        (b'{"ok": tru', 200),
        (b'{"data": {"repos": []}}', 200),
        (b'{"ok": "true", "data": {}}', 200),
        (b"[1, 2, 3]", 201),
        (b'{"ok": false, "error": {"code": "INTERNAL_ERROR", "message": "Failed to load run"}}', 200),
    ],
)
def test_anything_but_an_ok_envelope_is_a_protocol_error_naming_the_status(body: bytes, status: int) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse_envelope(body, status)

    assert raised.value.status == status
    assert str(status) in str(raised.value)


def test_ok_false_message_carries_upstreams_words() -> None:
    with pytest.raises(ProtocolError, match="Failed to load run"):
        parse_envelope(
            b'{"ok": false, "error": {"code": "INTERNAL_ERROR", "message": "Failed to load run"}}', 200
        )


def test_decode_json_of_html_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not JSON"):
        decode_json(b"<!doctype html><title>Log in</title>", 200)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"ok":false,"error":{"code":"FORBIDDEN","message":"Missing required scope: read."}}',
            "Missing required scope: read.",
        ),
        (b'{"ok":false,"error":{"code":"NOT_FOUND"}}', "NOT_FOUND"),
        (b'{"ok":false,"error":"nope"}', None),
        (b"<html>502</html>", None),
        (b'{"ok":false,"error":{"message":"' + b"x" * 1000 + b'"}}', "x" * 300),
    ],
)
def test_error_message_from_an_error_envelope(body: bytes, expected: str | None) -> None:
    assert error_message(body) == expected


# -- the records #11 adds -----------------------------------------------------------

AUTOMATION_ID = "9A1B2C3D-0000-4000-8000-000000000001"


def _cursor(payload: object) -> str:
    import base64

    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


GOOD_CURSOR = _cursor({"createdAt": "2026-08-03T15:00:20.123456+00:00", "id": AUTOMATION_ID.lower()})


def automation(**extra: Any) -> dict[str, Any]:
    return {
        "id": AUTOMATION_ID,
        "installationId": 4242,
        "name": "Review PRs",
        "description": None,
        "status": "active",
        "publishedVersionId": "9A1B2C3D-0000-4000-8000-0000000000FF",
        "createdAt": "2026-08-03T15:00:20.123456+00:00",
        "updatedAt": "2026-08-03T15:00:21+00:00",
        **extra,
    }


@pytest.mark.parametrize(
    ("cursor", "kept"),
    [
        (GOOD_CURSOR, True),
        (None, False),
        ("%%", False),
        (_cursor({"createdAt": "yesterday", "id": AUTOMATION_ID}), False),
        (_cursor({"createdAt": "2026-08-03T15:00:20Z", "id": "not-a-uuid"}), False),
        (_cursor([1, 2]), False),
        (12, False),
    ],
)
def test_an_automation_page_keeps_only_a_cursor_mogplex_would_accept(cursor: object, kept: bool) -> None:
    page = parse_automations({"automations": [automation()], "nextCursor": cursor})

    assert page.next_cursor == (cursor if kept else None)
    assert page.cursor_refused == (cursor is not None and not kept)
    assert page.automations[0].id == AUTOMATION_ID.lower()
    assert page.automations[0].published_version_id == "9a1b2c3d-0000-4000-8000-0000000000ff"
    assert automation_cursor_valid(GOOD_CURSOR)


def test_an_unreadable_automation_costs_only_its_own_row() -> None:
    page = parse_automations(
        {"automations": [automation(status=["active"]), "nope", automation(name=7)], "nextCursor": None}
    )

    assert [(a.id, a.status) for a in page.automations] == [
        (AUTOMATION_ID.lower(), UNREADABLE),
        ("unreadable-1", UNREADABLE),
        (AUTOMATION_ID.lower(), "active"),
    ]
    assert (
        page.automations[0].description == "Mogplex sent this automation with 'status' as a list, not text."
    )
    assert page.automations[2].name is None


def test_an_automation_detail_reads_its_run_summary_leniently() -> None:
    detail = parse_automation(
        {
            "automation": {
                **automation(),
                "notes": "n",
                "draftGraph": {"nodes": []},
                "publishedVersion": {
                    "id": "V1",
                    "versionNumber": 3,
                    "graph": {},
                    "createdAt": "2026-08-03T15:00:00Z",
                },
                "runSummary": {
                    "lastRunId": "9A1B2C3D-0000-4000-8000-00000000000A",
                    "lastRunStatus": "failed",
                    "runningCount": 1,
                    "pendingCount": "2",
                    "failed24h": 4,
                },
            }
        }
    )
    bare = parse_automation({"automation": {**automation(), "runSummary": "none", "publishedVersion": 5}})

    summary = detail.run_summary
    assert (summary.last_run_id, summary.last_run_status) == (
        "9a1b2c3d-0000-4000-8000-00000000000a",
        "failed",
    )
    assert (summary.running_count, summary.pending_count, summary.failed_24h) == (1, None, 4)
    assert detail.published_version is not None and detail.published_version.version_number == 3
    assert bare.run_summary == AutomationRunSummary() and bare.published_version is None
    assert AutomationDetail.from_dict(json.loads(json.dumps(detail.to_dict()))) == detail


def test_job_runs_and_a_clipped_job_run_detail() -> None:
    run = {
        "id": "8A1B2C3D-0000-4000-8000-000000000001",
        "status": "failed",
        "flow_id": AUTOMATION_ID,
        "created_at": "2026-08-03T15:00:00.5+00:00",
        "started_at": "2026-08-03T15:00:10Z",
        "completed_at": "2026-08-03T15:01:10+00:00",
        "duration_ms": 60000,
        "error": "Agent run exited with code 2.",
        "repo": {"id": "0A1B2C3D-0000-4000-8000-000000000002", "full_name": "acme/app"},
        "latest_dispatch_event": {"outcome": "failed", "reason": "exit 2"},
        "cost_usd": None,
    }
    raw_events = [
        {
            "id": f"7A1B2C3D-0000-4000-8000-{n:012d}",
            "event_type": "log",
            "message": "m" * 5000,
            "payload": {"output": "x" * 10_000},
            "created_at": "2026-08-03T15:00:11Z",
        }
        for n in range(AI_CALL_EVENTS_KEPT + 10)
    ]
    detail = parse_job_run(
        {
            "run": {
                **run,
                "dispatch_events": [{"event_kind": "start", "outcome": "started"}],
                "ai_calls": [
                    {"id": "6A1B2C3D-0000-4000-8000-000000000001", "status": "failed", "events": raw_events}
                ],
            }
        }
    )
    [listed] = parse_job_runs({"runs": [run]})

    assert listed.automation_id == AUTOMATION_ID.lower()
    assert (listed.repo_full_name, listed.latest_dispatch_outcome) == ("acme/app", "failed")
    assert listed.is_terminal and listed.duration_ms == 60000
    call = detail.ai_calls[0]
    assert call.events_total == AI_CALL_EVENTS_KEPT + 10
    assert len(call.events) == AI_CALL_EVENTS_KEPT
    assert call.events[-1].id == raw_events[-1]["id"].lower()
    assert len(call.events[0].message or "") == AI_CALL_TEXT_CHARS
    assert call.events[0].payload["clipped"] is True
    assert detail.dispatch_events[0].outcome == "started"
    assert JobRunDetail.from_dict(json.loads(json.dumps(detail.to_dict()))) == detail


def test_a_job_run_pending_for_over_two_minutes() -> None:
    [run] = parse_job_runs(
        {
            "runs": [
                {
                    "id": "8a1b2c3d-0000-4000-8000-000000000001",
                    "status": "pending",
                    "created_at": "2026-08-03T15:00:00+00:00",
                }
            ]
        }
    )

    assert not run.pending_too_long(datetime(2026, 8, 3, 15, 2, tzinfo=UTC))
    assert run.pending_too_long(datetime(2026, 8, 3, 15, 2, 1, tzinfo=UTC))


def test_the_whole_auth_user_record() -> None:
    user = parse_auth_user(
        {
            "user": {
                "id": "8a1b2c3d-0000-4000-8000-000000000001",
                "github_state": "app_install_pending",
                "github_connected": True,
                "github_app_connected": False,
                "github_connection_mode": None,
                "github_install_pending": True,
                "github_installation_count": 0,
                "github_synced_repo_count": "3",
                "github_status_label": "Install pending",
                "github_status_detail": "Finish the GitHub App install in GitHub.",
                "github_primary_action": {
                    "kind": "complete_install",
                    "label": "Complete GitHub App install",
                    "href": "/api/auth/github",
                },
                "platform_access": {"allowPlatformAi": False, "allowPlatformSandbox": True},
                "vercel": {
                    "platformState": "not_configured",
                    "statusLabel": "Platform not configured",
                    "canUsePlatformOps": False,
                },
            }
        }
    )
    hostile = parse_auth_user({"user": {"github_primary_action": {"href": "javascript:alert(1)"}}})

    assert user is not None and hostile is not None
    assert (user.github_state, user.github_install_pending, user.github_synced_repo_count) == (
        "app_install_pending",
        True,
        None,
    )
    action = user.github_primary_action
    assert action is not None and action.kind == "complete_install"
    assert action.url("https://mogplex.com/") == "https://mogplex.com/api/auth/github"
    assert (user.allow_platform_ai, user.allow_platform_sandbox) == (False, True)
    assert (user.vercel.platform_state, user.vercel.can_use_platform_ops) == ("not_configured", False)
    assert hostile.github_primary_action is not None
    assert hostile.github_primary_action.url("https://mogplex.com") is None
    assert AccountUser.from_dict(json.loads(json.dumps(user.to_dict()))) == user


def test_presets_have_no_slug() -> None:
    preset, own = parse_agents(
        {
            "agents": [
                {
                    "id": "preset:PR-REVIEWER",
                    "name": "PR-REVIEWER",
                    "slug": None,
                    "model": "m",
                    "preset": True,
                },
                {
                    "id": "7a1b2c3d-0000-4000-8000-000000000001",
                    "name": "Mine",
                    "slug": "mine",
                    "preset": False,
                },
            ]
        }
    )

    assert (preset.slug, preset.is_preset) == (None, True)
    assert (own.slug, own.is_preset) == ("mine", False)
    assert Agent(id="preset:X").is_preset


@pytest.mark.parametrize(
    ("code", "exit_code", "reason"),
    [
        ("model_access_denied", 1, "model not available to this account"),
        ("rate_limited", 1, "the model provider rate-limited the run"),
        ("command_failed", 2, "the agent exited with code 2"),
        ("command_failed", None, "the agent command failed"),
        ("out_of_memory", 137, "out_of_memory"),
        (None, 0, None),
    ],
)
def test_failure_reasons_and_unknown_codes_as_they_are(
    code: str | None, exit_code: int | None, reason: str | None
) -> None:
    assert failure_reason(code, exit_code) == reason


def test_a_runs_outcome_comes_from_its_terminal_event() -> None:
    failed = parse_run_events(
        {
            "run": {**RUN, "status": "failed"},
            "events": [event(1, "failed", {"exit_code": 2, "failure_code": "command_failed"})],
        }
    )
    odd = parse_run_events(
        {"run": RUN, "events": [event(1, "failed", {"exit_code": "2", "failure_code": ["x"]})]}
    )
    shipped = parse_run_events(
        {
            "run": RUN,
            "events": [
                delivery(1, "https://x.test/pull/1"),
                event(2, "finished", {"exit_code": 0, "failure_code": None}),
            ],
        }
    )

    assert failed.outcome().reason == "the agent exited with code 2"
    assert (odd.outcome().exit_code, odd.outcome().failure_code, odd.outcome().reason) == (None, None, None)
    assert (shipped.outcome().delivery, shipped.outcome().terminal_event) == ("pull_request", "finished")
    assert RunEvents(run=parse_run_detail(RUN)).outcome() == RunOutcome()


def test_an_unreadable_lifecycle_event_keeps_its_place() -> None:
    logs = parse_sandbox_logs(
        {
            "sandbox": SANDBOX,
            "lifecycle_events": [
                {"id": "1", "event_type": "tab_released", "created_at": "2026-08-03T15:00:00Z"},
                {"id": "2", "event_type": None, "created_at": "2026-08-03T15:00:01Z"},
                {
                    "id": "3",
                    "event_type": "auto_pause_decision",
                    "decision_code": "auto_pause_skipped_busy",
                    "payload": {"busy_reason": "exec_lock"},
                },
            ],
        }
    )

    assert [e.event_type for e in logs.lifecycle_events] == [
        "tab_released",
        UNREADABLE,
        "auto_pause_decision",
    ]
    assert logs.lifecycle_events[1].payload == {
        "problem": "Mogplex sent this lifecycle event without 'event_type'."
    }
    assert logs.lifecycle_events[1].created_at == datetime(2026, 8, 3, 15, 0, 1, tzinfo=UTC)
    assert logs.lifecycle_events[2].decision_code in AUTO_PAUSE_DECISION_CODES


@pytest.mark.parametrize("text", CORPUS)
def test_hostile_text_in_the_new_records_is_kept_verbatim_or_clipped_never_linked(text: str) -> None:
    page = parse_automations({"automations": [automation(name=text, description=text)], "nextCursor": text})
    user = parse_auth_user(
        {
            "user": {
                "github_status_label": text,
                "github_status_detail": text,
                "github_primary_action": {"kind": text, "label": text, "href": text},
                "vercel": {"statusLabel": text, "statusDetail": text},
            }
        }
    )
    [job_run] = parse_job_runs({"runs": [{"id": AUTOMATION_ID, "status": "failed", "error": text}]})
    detail = parse_job_run(
        {
            "run": {
                "id": AUTOMATION_ID,
                "status": "failed",
                "ai_calls": [
                    {
                        "id": AUTOMATION_ID,
                        "error": text,
                        "events": [{"id": AUTOMATION_ID, "event_type": "log", "message": text}],
                    }
                ],
            }
        }
    )

    assert user is not None and user.github_primary_action is not None
    assert (page.automations[0].name, user.github_status_detail, user.vercel.status_label) == (
        text,
        text,
        text,
    )
    assert job_run.error == text
    assert page.next_cursor is None, "a cursor Mogplex never gave out is not passed on"
    url = user.github_primary_action.url("https://mogplex.com")
    assert url is None or url.startswith(("https://", "http://"))
    assert len(detail.ai_calls[0].events[0].message or "") <= AI_CALL_TEXT_CHARS
    for record in (page, user, job_run, detail):
        assert type(record).from_dict(json.loads(json.dumps(record.to_dict()))) == record
