"""The simulator behaves like Mogplex v1 as the contract describes it, over real HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest

from dashboard.demo import new_pat
from dashboard.simulator.control import SimulatorControl
from tests.waiting import wait_for

# Postgres text output: 0 to 6 fraction digits (trailing zeros dropped), +00:00 or Z.
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|\+00:00)$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
RUN_FIELDS = {
    "runId",
    "aiCallId",
    "repoId",
    "sandboxRecordId",
    "sandboxId",
    "harness",
    "status",
    "branch",
    "rootDirectory",
    "eventsUrl",
    "cancelUrl",
    "createdAt",
    "updatedAt",
    "error",
    "runtime",
}
SANDBOX_FIELDS = {
    "id",
    "sandbox_id",
    "repo_id",
    "status",
    "base_branch",
    "working_branch",
    "root_directory",
    "preview_url",
    "error",
    "created_at",
    "last_active_at",
}
MISSING_UUID = "6f1c1f5e-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Tokens:
    reader: str  # PAT, ["read"], user alice
    writer: str  # PAT, ["read", "write"], user alice
    stranger: str  # PAT, ["read"], user bob
    no_scopes: str  # PAT with no scopes, user alice
    oauth: str  # not a PAT: counts as OAuth, ["read"], user alice


@pytest.fixture
def tokens(sim: SimulatorControl) -> Tokens:
    made = Tokens(
        reader=new_pat(),
        writer=new_pat(),
        stranger=new_pat(),
        no_scopes=new_pat(),
        oauth="oat_" + new_pat()[4:],
    )
    sim.register_token("reader", made.reader, ["read"], user="alice")
    sim.register_token("writer", made.writer, ["read", "write"], user="alice")
    sim.register_token("stranger", made.stranger, ["read"], user="bob")
    sim.register_token("no-scopes", made.no_scopes, [], user="alice")
    sim.register_token("oauth", made.oauth, ["read"], user="alice")
    return made


@pytest.fixture
def api(simulator_server: str) -> Iterator[httpx.Client]:
    """A plain client on the API base; redirects are not followed."""
    with httpx.Client(base_url=f"{simulator_server}/api/v1/mogplex", timeout=10) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def data(response: httpx.Response) -> Any:
    body = response.json()
    assert response.status_code in (200, 202), body
    assert set(body) == {"ok", "data"}
    assert body["ok"] is True
    return body["data"]


def assert_error(response: httpx.Response, status: int, code: str, message: str) -> None:
    assert response.status_code == status
    assert response.json() == {"ok": False, "error": {"code": code, "message": message}}


def alice_repo(sim: SimulatorControl, name: str = "acme/web") -> str:
    return next(str(repo["id"]) for repo in sim.repos("alice") if repo["full_name"] == name)


def events(api: httpx.Client, token: str, run_id: str, **params: Any) -> list[dict[str, Any]]:
    return list(data(api.get(f"/runs/{run_id}/events", params=params, headers=auth(token)))["events"])


# --- envelopes, authentication, scopes -----------------------------------------------


def test_repos_are_an_envelope_sorted_by_full_name(api: httpx.Client, tokens: Tokens) -> None:
    response = api.get("/repos", headers=auth(tokens.reader))

    repos = data(response)["repos"]
    assert response.headers["content-type"].startswith("application/json")
    names = [repo["full_name"] for repo in repos]
    assert names == sorted(names)
    assert len(names) == 6
    assert all(name.startswith("acme/") for name in names)
    assert "acme/legacy-archive" not in names
    for repo in repos:
        assert set(repo) == {"id", "full_name", "installation_id", "default_branch", "root_directory"}
        assert UUID.match(repo["id"])
    # A repo synced through OAuth, outside the GitHub App, has no installation id.
    assert [r["full_name"] for r in repos if r["installation_id"] is None] == ["acme/docs"]
    assert all(isinstance(r["installation_id"], int) for r in repos if r["full_name"] != "acme/docs")


def test_repo_filters_id_wins_over_q_and_a_bad_id_lists_nothing(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    web = alice_repo(sim)

    def names(**params: str) -> list[str]:
        repos = data(api.get("/repos", params=params, headers=auth(tokens.reader)))["repos"]
        return [repo["full_name"] for repo in repos]

    assert names(q="WEB") == ["acme/web"]
    assert names(q="acme_w") == ["acme/web"]  # _ is a wildcard
    assert names(q="a%i") == ["acme/api", "acme/billing", "acme/infra", "acme/mobile"]
    assert names(q="  ") == names()  # trimmed, and empty means absent
    assert names(id=web.upper(), q="docs") == ["acme/web"]
    assert names(id="not-a-uuid") == []
    assert names(limit="2") == ["acme/api", "acme/billing"]


def test_unknown_token_is_401_with_www_authenticate(
    api: httpx.Client, tokens: Tokens, simulator_server: str
) -> None:
    response = api.get("/repos", headers=auth("mog_" + "x" * 24))

    assert_error(response, 401, "UNAUTHORIZED", "Unauthorized")
    assert response.headers["www-authenticate"] == (
        f'Bearer resource_metadata="{simulator_server}/.well-known/oauth-protected-resource/api/v1/mogplex/mcp"'
    )


def test_bearer_is_matched_on_its_exact_characters(api: httpx.Client, tokens: Tokens) -> None:
    response = api.get("/repos", headers={"Authorization": f"Bearer  {tokens.reader}"})

    assert_error(response, 401, "UNAUTHORIZED", "Unauthorized")


def test_oauth_token_needs_read_or_write(api: httpx.Client, tokens: Tokens, sim: SimulatorControl) -> None:
    scopeless = "oat_" + new_pat()[4:]
    sim.register_token("oauth-scopeless", scopeless, [], user="alice")

    assert data(api.get("/repos", headers=auth(tokens.oauth)))["repos"]
    assert_error(api.get("/repos", headers=auth(scopeless)), 401, "UNAUTHORIZED", "Unauthorized")


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("POST", "/runs", "write"),
        ("POST", f"/runs/{MISSING_UUID}/cancel", "write"),
        ("GET", "/models", "read"),
        ("GET", "/agents", "read"),
        ("GET", f"/sandboxes/{MISSING_UUID}/logs", "read"),
    ],
)
def test_missing_scope_is_403_with_mogplex_message(
    api: httpx.Client, tokens: Tokens, method: str, path: str, scope: str
) -> None:
    token = tokens.reader if scope == "write" else tokens.no_scopes

    response = api.request(method, path, headers={**auth(token), "Idempotency-Key": "k1"}, json={})

    assert_error(
        response,
        403,
        "FORBIDDEN",
        f"Missing required scope: {scope}. Issue a new token with the '{scope}' scope at /settings/api-keys.",
    )


def test_runs_and_sandboxes_need_no_scope(api: httpx.Client, tokens: Tokens) -> None:
    assert data(api.get("/sandboxes", headers=auth(tokens.no_scopes))) == {"sandboxes": []}
    assert data(api.get("/repos", headers=auth(tokens.no_scopes)))["repos"]


def test_get_runs_is_405_with_empty_body_no_allow_and_no_cost(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    sim.configure(limit=1)

    for token in (tokens.reader, "mog_invalid", tokens.reader):
        response = api.get("/runs", headers=auth(token))
        assert response.status_code == 405
        assert response.content == b""
        assert "allow" not in response.headers
    assert api.delete(f"/runs/{MISSING_UUID}", headers=auth(tokens.reader)).status_code == 405

    assert api.get("/repos", headers=auth(tokens.reader)).status_code == 200


@pytest.mark.parametrize(
    "headers",
    # A header value cannot end in spaces on the wire, so "Bearer " arrives as "Bearer".
    [{}, {"Authorization": "bearer TOKEN"}, {"Authorization": "Bearer"}, {"Authorization": "Basic TOKEN"}],
    ids=["missing", "lowercase", "empty", "basic"],
)
def test_no_proper_bearer_is_a_307_to_login(
    api: httpx.Client, tokens: Tokens, headers: dict[str, str]
) -> None:
    headers = {k: v.replace("TOKEN", tokens.reader) for k, v in headers.items()}

    response = api.get("/runs", params={"limit": "5"}, headers=headers)

    assert response.status_code == 307
    assert response.headers["location"].endswith("/login?next=%2Fapi%2Fv1%2Fmogplex%2Fruns%3Flimit%3D5")


def test_following_the_login_redirect_ends_in_html(api: httpx.Client) -> None:
    response = api.get("/repos", follow_redirects=True)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


def test_unknown_path_is_404_html(api: httpx.Client, tokens: Tokens) -> None:
    response = api.post("/pr-reviews/rerun", headers=auth(tokens.writer))

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


def test_non_uuid_ids_are_500(api: httpx.Client, tokens: Tokens) -> None:
    headers = auth(tokens.reader)

    assert_error(api.get("/runs/abc", headers=headers), 500, "INTERNAL_ERROR", "Failed to load run")
    assert_error(api.get("/runs/abc/events", headers=headers), 500, "INTERNAL_ERROR", "Failed to list events")
    assert_error(
        api.get("/sandboxes", params={"repo_id": "acme/web"}, headers=headers),
        500,
        "INTERNAL_ERROR",
        "Failed to list sandboxes",
    )
    assert api.get("/sandboxes/abc/logs", headers=headers).status_code == 500


def test_unknown_and_foreign_runs_are_404(api: httpx.Client, tokens: Tokens, sim: SimulatorControl) -> None:
    run = sim.create_run("alice")

    assert_error(
        api.get(f"/runs/{MISSING_UUID}", headers=auth(tokens.reader)), 404, "NOT_FOUND", "Run not found"
    )
    assert_error(
        api.get(f"/runs/{run['runId']}/events", headers=auth(tokens.stranger)),
        404,
        "NOT_FOUND",
        "Run not found",
    )
    assert data(api.get(f"/runs/{run['runId'].upper()}", headers=auth(tokens.reader)))["run"] == run


# --- runs ------------------------------------------------------------------------------


def test_run_detail_shape(api: httpx.Client, tokens: Tokens, sim: SimulatorControl) -> None:
    repo_id = alice_repo(sim)
    created = sim.create_run("alice", repo_id=repo_id, harness="claude-code")

    run = data(api.get(f"/runs/{created['runId']}", headers=auth(tokens.reader)))["run"]

    assert set(run) == RUN_FIELDS
    assert run["status"] == "pending"
    assert run["repoId"] == repo_id
    assert run["harness"] == "claude-code"
    assert run["sandboxId"] is None and run["sandboxRecordId"] is None
    assert run["branch"] == {"base": "main", "working": "main", "createBranch": False}
    assert run["rootDirectory"] == "apps/web"
    assert run["eventsUrl"] == f"/api/v1/mogplex/runs/{run['runId']}/events"
    assert run["cancelUrl"] == f"/api/v1/mogplex/runs/{run['runId']}/cancel"
    assert STAMP.match(run["createdAt"]) and STAMP.match(run["updatedAt"])
    assert run["runtime"]["provider"] == "trigger"


def test_events_are_oldest_first_default_100_capped_at_200(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    run_id = sim.create_run("alice")["runId"]
    sim.add_events(run_id, 250)

    default = events(api, tokens.reader, run_id)
    most = events(api, tokens.reader, run_id, limit=500)

    accepted = "External Mogplex run accepted"
    assert [e["message"] for e in default] == [accepted] + [f"log {n}" for n in range(1, 100)]
    assert [e["message"] for e in most] == [accepted] + [f"log {n}" for n in range(1, 200)]
    stamps = [datetime.fromisoformat(e["createdAt"]) for e in most]
    assert stamps == sorted(stamps)
    response = api.get(f"/runs/{run_id}/events", headers=auth(tokens.reader))
    assert data(response)["run"]["runId"] == run_id
    assert set(most[0]) == {"id", "type", "toolName", "message", "payload", "createdAt"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, 100),
        ("", 100),
        ("abc", 100),
        ("0", 1),
        ("-5", 1),
        ("999", 200),
        ("10abc", 10),
        ("3.7", 3),
        ("1e3", 1),
        ("  7", 7),
        ("+4", 4),
        ("9" * 400, 100),  # parseInt gives Infinity: not finite, so the default
    ],
)
def test_limit_is_parsed_like_javascript_parseint(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl, raw: str | None, expected: int
) -> None:
    run_id = sim.create_run("alice")["runId"]
    sim.add_events(run_id, 250)
    params = {} if raw is None else {"limit": raw}

    assert len(events(api, tokens.reader, run_id, **params)) == expected


def test_repeated_limit_takes_the_first_and_unknown_params_are_ignored(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    run_id = sim.create_run("alice")["runId"]
    sim.add_events(run_id, 30)

    response = api.get(
        f"/runs/{run_id}/events?limit=5&limit=9&since=2099-01-01&cursor=x&offset=3",
        headers=auth(tokens.reader),
    )

    assert [e["message"] for e in data(response)["events"]][1:] == [f"log {n}" for n in range(1, 5)]


def test_a_run_emits_mogplex_events_in_order_and_delivers_a_pull_request(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    run_id = sim.create_run("alice", repo_id=alice_repo(sim, "acme/api"), create_branch=True)["runId"]
    before = sim.status_changes()
    pending = data(api.get(f"/runs/{run_id}/events", headers=auth(tokens.reader)))

    sim.set_run_status(run_id, "streaming")
    sim.add_events(run_id, 1, type="tool_started", tool_name="read_file", payload={"path": "README.md"})
    sim.add_events(run_id, 1, type="tool_finished", tool_name="read_file")
    sim.set_run_status(run_id, "success")

    feed = data(api.get(f"/runs/{run_id}/events", headers=auth(tokens.reader)))
    run, evs = feed["run"], feed["events"]
    # A real run has its first event while still pending.
    assert pending["run"]["status"] == "pending"
    assert [(e["type"], e["message"]) for e in pending["events"]] == [
        ("started", "External Mogplex run accepted")
    ]
    working = run["branch"]["working"]
    assert pending["events"][0]["payload"] == {
        "external_run_id": run_id,
        "harness_id": "codex",
        "working_branch": working,
    }
    assert run["status"] == "success"
    assert datetime.fromisoformat(run["updatedAt"]) > datetime.fromisoformat(pending["run"]["updatedAt"])
    assert UUID.match(run["sandboxRecordId"]) and run["sandboxId"].startswith("sbx_")
    assert [(e["type"], e["message"]) for e in evs] == [
        ("started", "External Mogplex run accepted"),
        ("started", "Harness run started: codex"),
        ("log", f"Synchronized {working}"),
        ("log", "Installed @openai/codex"),
        ("status_changed", "Harness run streaming"),
        ("tool_started", "tool_started 1"),
        ("tool_finished", "tool_finished 1"),
        ("log", "Pull request ready"),
        ("finished", "Harness run finished"),
    ]
    assert evs[1]["payload"] == {"harness_id": "codex", "ai_billing_source": "[redacted]"}
    assert evs[2]["payload"]["stage"] == "git_sync" and evs[3]["payload"]["stage"] == "install"
    assert evs[4]["payload"]["from"] == "pending" and evs[4]["payload"]["to"] == "streaming"
    assert evs[5]["toolName"] == "read_file"
    delivery = evs[7]
    assert delivery["payload"]["stage"] == "git_delivery"
    assert delivery["payload"]["changed"] is True
    assert re.match(r"^https://github\.com/acme/api/pull/\d+$", delivery["payload"]["pull_request_url"])
    assert delivery["payload"]["base_branch"] == "main"
    assert re.match(r"^mogplex/external/[0-9a-f]{8}-[0-9a-f]{8}$", delivery["payload"]["working_branch"])
    assert isinstance(delivery["payload"]["auto_committed_files"], list)
    assert evs[8]["payload"] == {"exit_code": 0, "failure_code": None}
    assert all(STAMP.match(e["createdAt"]) for e in evs)

    changes = [(c["run_id"], c["status"]) for c in sim.status_changes()]
    assert changes == [(run_id, "pending"), (run_id, "streaming"), (run_id, "success")]
    assert before == sim.status_changes()[:1]


def test_a_run_without_changes_says_so(api: httpx.Client, tokens: Tokens, sim: SimulatorControl) -> None:
    run_id = sim.create_run("alice")["runId"]
    sim.set_run_status(run_id, "streaming")
    sim.set_run_status(run_id, "success", changed=False)

    delivery = next(
        e for e in events(api, tokens.reader, run_id) if e["payload"].get("stage") == "git_delivery"
    )

    assert delivery["message"] == "No code changes to deliver"
    assert delivery["payload"]["changed"] is False
    assert delivery["payload"]["pull_request_url"] is None


@pytest.mark.parametrize(
    ("harness", "failure_code", "exit_code", "error"),
    [
        (
            "codex",
            "model_access_denied",
            1,
            "OpenAI accepted the API key, but the model selected by Codex is unavailable for this account. "
            "Check model access with OpenAI, then try again.",
        ),
        ("claude-code", "rate_limited", 1, "Anthropic rate-limited this run. Wait a moment, then try again."),
        ("codex", "command_failed", 2, "Agent run exited with code 2."),
    ],
)
def test_a_failed_run_carries_mogplexs_failure_code_and_sentence(
    api: httpx.Client,
    tokens: Tokens,
    sim: SimulatorControl,
    harness: str,
    failure_code: str,
    exit_code: int,
    error: str,
) -> None:
    run_id = sim.create_run("alice", harness=harness)["runId"]
    sim.set_run_status(run_id, "streaming")

    sim.set_run_status(run_id, "failed", failure_code=failure_code, exit_code=exit_code)

    feed = data(api.get(f"/runs/{run_id}/events", headers=auth(tokens.reader)))
    assert feed["run"]["status"] == "failed"
    assert feed["run"]["error"] == error
    last = feed["events"][-1]
    assert (last["type"], last["message"]) == ("failed", "Harness run failed")
    assert last["payload"] == {"exit_code": exit_code, "failure_code": failure_code}


def test_failed_outside_the_harness_and_cancelled_runs(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    failed = sim.create_run("alice")["runId"]
    default = sim.create_run("alice")["runId"]
    cancelled = sim.create_run("alice")["runId"]

    sim.set_run_status(failed, "streaming")
    sim.set_run_status(failed, "failed", error="Sandbox failed to start")
    sim.set_run_status(default, "failed")
    sim.set_run_status(cancelled, "cancelled")

    failed_feed = data(api.get(f"/runs/{failed}/events", headers=auth(tokens.reader)))
    assert failed_feed["run"]["error"] == "Sandbox failed to start"
    assert failed_feed["events"][-1]["message"] == "Harness stream failed"
    assert failed_feed["events"][-1]["payload"]["error"] == "Sandbox failed to start"
    assert events(api, tokens.reader, default)[-1]["payload"] == {
        "exit_code": 1,
        "failure_code": "command_failed",
    }
    assert [e["type"] for e in events(api, tokens.reader, cancelled)] == ["started", "cancelled"]
    with pytest.raises(httpx.HTTPStatusError):
        sim.set_run_status(cancelled, "failed", failure_code="out_of_memory")


def test_a_pending_run_reuses_an_active_sandbox_on_its_branch(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    web = alice_repo(sim)
    sandbox = sim.create_sandbox("alice", repo_id=web, status="running")
    sim.create_sandbox("alice", repo_id=web, status="paused")

    reusing = sim.create_run("alice", repo_id=web)
    fresh = sim.create_run("alice", repo_id=web, create_branch=True)

    run = data(api.get(f"/runs/{reusing['runId']}", headers=auth(tokens.reader)))["run"]
    assert run["status"] == "pending"
    assert run["sandboxRecordId"] == sandbox["id"]
    assert run["sandboxId"] == sandbox["sandbox_id"]
    assert fresh["sandboxRecordId"] is None
    sim.set_run_status(reusing["runId"], "streaming")
    assert len(data(api.get("/sandboxes", headers=auth(tokens.reader)))["sandboxes"]) == 2


def test_streaming_run_shows_a_pending_sandbox_id_until_the_sandbox_is_up(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    run_id = sim.create_run("alice")["runId"]

    run = sim.set_run_status(run_id, "streaming", sandbox_pending=True)
    sandbox = data(api.get("/sandboxes", headers=auth(tokens.reader)))["sandboxes"][0]
    assert run["sandboxId"] == "pending"
    assert sandbox["id"] == run["sandboxRecordId"]
    assert sandbox["sandbox_id"] == "pending"
    assert sandbox["status"] == "creating"

    sim.set_sandbox_status(sandbox["id"], "installing")
    after = data(api.get(f"/runs/{run_id}", headers=auth(tokens.reader)))["run"]
    sandbox = data(api.get("/sandboxes", headers=auth(tokens.reader)))["sandboxes"][0]
    assert after["sandboxId"] == sandbox["sandbox_id"] != "pending"
    assert after["updatedAt"] >= run["updatedAt"]


def test_patch_overwrites_fields_verbatim(api: httpx.Client, tokens: Tokens, sim: SimulatorControl) -> None:
    run_id = sim.create_run("alice")["runId"]
    hostile = "<script>alert(1)</script>"

    sim.patch_run(run_id, status="teleporting", error=hostile, rootDirectory=None, futureField=[1])

    run = data(api.get(f"/runs/{run_id}", headers=auth(tokens.reader)))["run"]
    assert run["status"] == "teleporting"
    assert run["error"] == hostile
    assert run["futureField"] == [1]
    assert sim.status_changes()[-1]["status"] == "teleporting"


def test_a_run_handed_to_another_user_is_a_404_for_its_old_owner(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    run_id = sim.create_run("alice")["runId"]

    sim.set_run_owner(run_id, "bob")

    gone = api.get(f"/runs/{run_id}/events", headers=auth(tokens.reader))
    assert gone.status_code == 404
    assert gone.json() == {"ok": False, "error": {"code": "NOT_FOUND", "message": "Run not found"}}
    assert data(api.get(f"/runs/{run_id}/events", headers=auth(tokens.stranger)))["run"]["runId"] == run_id
    sim.set_run_owner(run_id, "alice")
    assert api.get(f"/runs/{run_id}", headers=auth(tokens.reader)).status_code == 200


def test_omitted_fields_are_left_out_until_restored(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    run_id = sim.create_run("alice")["runId"]
    sandbox_id = sim.create_sandbox("alice", status="running")["id"]

    sim.omit_run_fields(run_id, ["branch", "error", "runtime"])
    sim.omit_sandbox_fields(sandbox_id, ["preview_url", "repo_id"])

    events = data(api.get(f"/runs/{run_id}/events", headers=auth(tokens.reader)))
    assert set(events["run"]) == RUN_FIELDS - {"branch", "error", "runtime"}
    assert set(data(api.get(f"/runs/{run_id}", headers=auth(tokens.reader)))["run"]) == set(events["run"])
    sandbox = data(api.get("/sandboxes", headers=auth(tokens.reader)))["sandboxes"][0]
    assert set(sandbox) == SANDBOX_FIELDS - {"preview_url", "repo_id"}

    sim.omit_run_fields(run_id, [])
    sim.omit_sandbox_fields(sandbox_id, [])

    assert set(data(api.get(f"/runs/{run_id}", headers=auth(tokens.reader)))["run"]) == RUN_FIELDS
    assert set(data(api.get("/sandboxes", headers=auth(tokens.reader)))["sandboxes"][0]) == SANDBOX_FIELDS


# --- payload cleaning -----------------------------------------------------------------


def test_event_payloads_are_cleaned_on_read(api: httpx.Client, tokens: Tokens, sim: SimulatorControl) -> None:
    github = "gh" + "p_" + "A1b2C3d4" * 4
    nested_env = {"env": {"K": "v"}, "ok": 2}
    payload = {
        "env": {"PATH": "/bin"},
        "GITHUB_TOKEN": "x",
        "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k", "accept": "json"},
        "sessionId": "s",
        "command": "curl -H 'Authorization: Bearer abc.def' https://x-access-token:abc@github.com/acme/web",
        "notes": f"{github} sk-{'a' * 10} sb_secret_xyz keep sk-short",
        "long": "y" * 2500,
        "list": list(range(30)),
        "a": {"b": {"c": {"d": 1}, "n": 5}},
        "json_text": json.dumps({"password": "p", "ok": 1}),
        # Trimmed before the JSON check, and cleaned from depth 0 whatever its own depth.
        "deep": {"deeper": "  " + json.dumps({"a": {"b": {"c": {"d": 1}}}, "token": "t"}) + "\n"},
        # Only the key patterns apply inside JSON text, not the env-style names.
        "env_text": json.dumps(nested_env),
        "colon": "Authorization: Bearer abc:def",
        "array_text": "[1, 2]",
        "number_text": "[truncated",
    }
    run_id = sim.create_run("alice")["runId"]
    sim.add_events(
        run_id, 1, type="tool_finished", tool_name="Bearer raw", message="Bearer raw", payload=payload
    )

    event = events(api, tokens.reader, run_id)[-1]
    cleaned = event["payload"]

    assert event["message"] == "Bearer raw" and event["toolName"] == "Bearer raw"
    assert cleaned["env"] == "[redacted]"
    assert cleaned["GITHUB_TOKEN"] == "[redacted]"
    assert cleaned["headers"] == {"Authorization": "[redacted]", "X-Api-Key": "[redacted]", "accept": "json"}
    assert cleaned["sessionId"] == "[redacted]"
    assert "abc.def" not in cleaned["command"] and "Bearer [redacted]" in cleaned["command"]
    assert "x-access-token:abc@" not in cleaned["command"]
    assert cleaned["notes"] == "[redacted] [redacted] [redacted] keep sk-short"
    assert cleaned["long"] == "y" * 2000 + "\n...[truncated 500 chars]"
    assert cleaned["list"] == list(range(25))
    assert cleaned["a"] == {"b": {"c": "[truncated]", "n": 5}}
    assert json.loads(cleaned["json_text"]) == {"password": "[redacted]", "ok": 1}
    assert json.loads(cleaned["deep"]["deeper"]) == {"a": {"b": {"c": "[truncated]"}}, "token": "[redacted]"}
    assert json.loads(cleaned["env_text"]) == nested_env
    assert cleaned["colon"] == "Authorization: Bearer [redacted]:def"
    assert cleaned["array_text"] == "[1,2]"
    assert cleaned["number_text"] == "[truncated"
    stored = sim.run(run_id)["events"][-1]["payload"]
    assert stored == payload


def test_a_payload_too_large_after_cleaning_becomes_a_preview(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    payload = {f"k{n}": "z" * 1500 for n in range(20)}
    run_id = sim.create_run("alice")["runId"]
    sim.add_events(run_id, 1, payload=payload)

    cleaned = events(api, tokens.reader, run_id)[-1]["payload"]

    assert set(cleaned) == {"truncated", "payloadPreview"}
    assert cleaned["truncated"] is True
    assert len(cleaned["payloadPreview"]) == 20_000
    assert cleaned["payloadPreview"].startswith('{"k0":"zzz')


# --- sandboxes ------------------------------------------------------------------------


def test_sandboxes_are_snake_case_sorted_by_last_activity_and_filtered(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    web, docs = alice_repo(sim), alice_repo(sim, "acme/docs")
    first = sim.create_sandbox("alice", repo_id=web)
    second = sim.create_sandbox("alice", repo_id=docs, status="creating")
    third = sim.create_sandbox("alice", repo_id=web, status="paused")
    sim.create_sandbox("bob")
    sim.set_sandbox_status(first["id"], "pausing")

    def listed(**params: str) -> list[dict[str, Any]]:
        return list(data(api.get("/sandboxes", params=params, headers=auth(tokens.reader)))["sandboxes"])

    everything = listed()
    assert [s["id"] for s in everything] == [first["id"], third["id"], second["id"]]
    assert all(set(s) == SANDBOX_FIELDS for s in everything)
    assert next(s for s in everything if s["id"] == second["id"])["sandbox_id"] == "pending"
    assert [s["id"] for s in listed(repo_id=web.upper())] == [first["id"], third["id"]]
    assert [s["id"] for s in listed(status=" paused ")] == [third["id"]]
    assert listed(status="sleeping") == []
    assert len(listed(limit="1")) == 1


def test_sandbox_logs_oldest_200_uncleaned(api: httpx.Client, tokens: Tokens, sim: SimulatorControl) -> None:
    sandbox = sim.create_sandbox("alice", install_log="npm ci\n", dev_log="ready\n")
    sim.add_lifecycle_events(sandbox["id"], 250, event_type="auto_pause_queued", payload={"token": "raw"})
    sim.set_sandbox_status(sandbox["id"], "stopped")

    logs = data(api.get(f"/sandboxes/{sandbox['id']}/logs", headers=auth(tokens.reader)))

    assert logs["sandbox"]["install_log"] == "npm ci\n"
    assert logs["sandbox"]["dev_log"] == "ready\n"
    assert logs["sandbox"]["status"] == "stopped"
    lifecycle = logs["lifecycle_events"]
    assert len(lifecycle) == 200
    assert lifecycle[0]["event_type"] == "tab_attached"
    assert lifecycle[1]["payload"] == {"token": "raw"}
    stamps = [datetime.fromisoformat(e["created_at"]) for e in lifecycle]
    assert stamps == sorted(stamps)
    assert set(lifecycle[0]) == {
        "id",
        "event_type",
        "decision_code",
        "worker_run_id",
        "payload",
        "created_at",
    }
    assert_error(
        api.get(f"/sandboxes/{MISSING_UUID}/logs", headers=auth(tokens.reader)),
        404,
        "NOT_FOUND",
        "Sandbox not found",
    )
    assert api.get(f"/sandboxes/{sandbox['id']}/logs", headers=auth(tokens.stranger)).status_code == 404


def test_sandbox_pause_and_resume_write_mogplexs_lifecycle_events(sim: SimulatorControl) -> None:
    sandbox = sim.create_sandbox("alice")
    for status in ("pausing", "paused", "running", "pausing", "running", "pausing", "error"):
        sim.set_sandbox_status(sandbox["id"], status)

    seen = sim.sandbox(sandbox["id"])["lifecycle_events"]

    assert [(e["event_type"], e["decision_code"]) for e in seen] == [
        ("tab_attached", None),
        ("tab_released", None),
        ("auto_pause_queued", None),
        ("auto_pause_succeeded", "auto_pause_succeeded"),
        ("resume_after_auto_pause", None),
        ("tab_attached", None),
        ("tab_released", None),
        ("auto_pause_queued", None),
        # The provider would not stop it: back to running.
        ("auto_pause_failed", "auto_pause_failed"),
        ("tab_attached", None),
        ("tab_released", None),
        ("auto_pause_queued", None),
        ("auto_pause_failed", "auto_pause_failed"),
    ]
    queued = seen[2]
    assert queued["payload"]["grace_period_ms"] == 90_000
    assert queued["payload"]["release_event_id"] == seen[1]["id"]
    assert queued["payload"]["released_at"].endswith("Z")
    assert seen[3]["payload"]["release_event_id"] == seen[1]["id"]
    assert seen[3]["payload"]["snapshot_id"] == seen[4]["payload"]["snapshot_id"]
    assert seen[3]["worker_run_id"] == queued["worker_run_id"] and queued["worker_run_id"].startswith("run_")
    assert seen[0]["payload"]["event_seq"] == 1 and seen[1]["payload"]["event_seq"] == 2


# --- catalogue and account ------------------------------------------------------------


def test_models_sorted_by_provider_and_agents_presets_first(api: httpx.Client, tokens: Tokens) -> None:
    models = data(api.get("/models", headers=auth(tokens.reader)))["models"]
    agents = data(api.get("/agents", headers=auth(tokens.reader)))["agents"]

    providers = [m["provider"] for m in models]
    assert providers == sorted(providers)
    assert set(models[0]) == {"id", "provider", "name", "contextLength", "capabilities", "pricing"}
    presets = [a["preset"] for a in agents]
    assert presets == sorted(presets, reverse=True)
    own = [a["name"] for a in agents if not a["preset"]]
    assert own == sorted(own)
    by_id = {a["id"]: a for a in agents}
    # Presets are named after their template, have no slug and run the user's default model.
    assert by_id["preset:PR-REVIEWER"] == {
        "id": "preset:PR-REVIEWER",
        "name": "PR-REVIEWER",
        "slug": None,
        "model": "openai/gpt-5-codex",
        "description": "General PR review: scope, tests, rollout safety, regressions",
        "category": "code-review",
        "preset": True,
    }
    assert all(a["slug"] is None for a in agents if a["preset"])
    assert all(UUID.match(a["id"]) and a["slug"] for a in agents if not a["preset"])
    assert "preset:SECURITY-SCAN" not in by_id  # forked, so not listed again


def test_auth_user_is_always_200_and_null_unless_a_valid_pat(
    simulator_server: str, tokens: Tokens, sim: SimulatorControl
) -> None:
    url = f"{simulator_server}/api/auth/user"

    assert httpx.get(url).json() == {"user": None}
    assert httpx.get(url, headers=auth("mog_nope")).json() == {"user": None}
    assert httpx.get(url, headers=auth(tokens.oauth)).json() == {"user": None}
    me = httpx.get(url, headers=auth(tokens.reader))
    assert me.status_code == 200 and "ok" not in me.json()
    assert me.json()["user"]["username"] == "alice"

    sim.configure(limit=1)
    limited = httpx.get(url, headers=auth(tokens.reader))
    assert limited.status_code == 200
    assert limited.json() == {"user": None}


# --- the rate limit --------------------------------------------------------------------


def test_sliding_window_answers_429_with_retry_after(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    sim.configure(window_seconds=2, limit=3)
    headers = auth(tokens.reader)

    statuses = [api.get("/repos", headers=headers).status_code for _ in range(3)]
    limited = api.get("/runs/abc", headers=headers)

    assert statuses == [200, 200, 200]
    assert_error(limited, 429, "RATE_LIMITED", "Rate limit exceeded. Retry after 2s.")
    assert limited.headers["retry-after"] == "2"
    assert api.get("/repos", headers=auth(tokens.writer)).status_code == 200  # per token
    assert api.get("/repos", headers=auth("mog_unknown")).status_code == 401  # validated first
    assert api.get("/runs", headers=headers).status_code == 405  # no route check, no cost
    assert api.post("/runs", json={}, headers=headers).status_code == 429  # the limit comes before scope


def test_rejected_requests_do_not_extend_the_window(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    sim.configure(window_seconds=1, limit=2)
    headers = auth(tokens.reader)
    assert [api.get("/repos", headers=headers).status_code for _ in range(2)] == [200, 200]

    # Polling every 50 ms while limited: were rejections recorded, a slot would never free up.
    wait_for(
        lambda: api.get("/repos", headers=headers).status_code == 200, timeout=5, what="a slot to free up"
    )
    assert any(r["status"] == 429 for r in sim.requests())


def test_oauth_tokens_are_not_rate_limited(api: httpx.Client, tokens: Tokens, sim: SimulatorControl) -> None:
    sim.configure(limit=1)

    assert {api.get("/repos", headers=auth(tokens.oauth)).status_code for _ in range(5)} == {200}


# --- the writes a launcher uses ------------------------------------------------------------


def test_start_run_requires_an_idempotency_key_and_replays(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    body = {"repoId": alice_repo(sim), "prompt": "Fix the flaky test", "createBranch": True}
    headers = auth(tokens.writer)

    missing = api.post("/runs", json=body, headers=headers)
    created = api.post("/runs", json=body, headers={**headers, "Idempotency-Key": "job-1"})
    replayed = api.post("/runs", json=body, headers={**headers, "Idempotency-Key": "job-1"})
    conflict = api.post(
        "/runs", json={**body, "prompt": "Other"}, headers={**headers, "Idempotency-Key": "job-1"}
    )

    assert missing.status_code == 400 and missing.json()["error"]["code"] == "BAD_REQUEST"
    first = data(created)
    assert created.status_code == replayed.status_code == 202
    assert set(first) == RUN_FIELDS | {"replayed"}
    assert first["replayed"] is False and first["status"] == "pending"
    assert first["branch"]["working"].startswith("mogplex/external/")
    again = data(replayed)
    assert again["replayed"] is True and again["runId"] == first["runId"]
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    posts = [r for r in sim.requests() if r["method"] == "POST"]
    assert [r["idempotency_key"] for r in posts] == [False, True, True, True]


def test_start_run_rejects_bad_bodies_and_foreign_repos(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    headers = {**auth(tokens.writer), "Idempotency-Key": "k"}
    bob_repo = sim.repos("bob")[0]["id"]

    assert api.post("/runs", json={"prompt": "x"}, headers=headers).status_code == 400
    assert api.post("/runs", content=b"{", headers=headers).status_code == 400
    assert_error(
        api.post("/runs", json={"repoId": bob_repo, "prompt": "x"}, headers=headers),
        404,
        "NOT_FOUND",
        "Repo not found",
    )


def test_cancel_is_idempotent_and_keeps_a_terminal_state(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    active = sim.create_run("alice")["runId"]
    done = sim.create_run("alice")["runId"]
    sim.set_run_status(done, "success")
    headers = auth(tokens.writer)

    first = data(api.post(f"/runs/{active}/cancel", headers=headers))
    second = data(api.post(f"/runs/{active}/cancel", headers=headers))
    finished = data(api.post(f"/runs/{done}/cancel", headers=headers))

    assert set(first) == {"run", "status", "alreadyTerminal"}
    assert (first["status"], first["alreadyTerminal"], first["run"]["status"]) == (
        "cancelled",
        False,
        "cancelled",
    )
    assert (second["status"], second["alreadyTerminal"]) == ("cancelled", True)
    assert set(first["run"]) == RUN_FIELDS
    assert [(e["type"], e["message"]) for e in events(api, tokens.reader, active)] == [
        ("started", "External Mogplex run accepted"),
        ("cancel_requested", "Cancellation requested"),
        ("cancelled", "External Mogplex run cancelled"),
    ]
    assert (finished["status"], finished["alreadyTerminal"]) == ("success", True)
    assert_error(api.post("/runs/abc/cancel", headers=headers), 500, "INTERNAL_ERROR", "Failed to cancel run")


# --- records --------------------------------------------------------------------------


def test_request_record_names_tokens_never_shows_them(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    api.get("/repos", params={"q": "web"}, headers=auth(tokens.reader))
    api.get("/repos", headers=auth("mog_" + "q" * 24))
    api.get("/repos")
    api.post("/runs", json={}, headers={**auth(tokens.writer), "Idempotency-Key": "k"})

    record = sim.requests()

    assert [(r["method"], r["path"], r["token_name"], r["status"]) for r in record] == [
        ("GET", "/api/v1/mogplex/repos", "reader", 200),
        ("GET", "/api/v1/mogplex/repos", "unknown", 401),
        ("GET", "/api/v1/mogplex/repos", None, 307),
        ("POST", "/api/v1/mogplex/runs", "writer", 400),
    ]
    assert record[0]["query"] == "q=web"
    assert [r["idempotency_key"] for r in record] == [False, False, False, True]
    assert set(record[0]) == {
        "seq",
        "method",
        "path",
        "query",
        "token_name",
        "time",
        "status",
        "idempotency_key",
    }
    seqs = [r["seq"] for r in record]
    assert seqs == sorted(seqs)
    assert sim.requests(since=seqs[1]) == record[2:]
    text = json.dumps(record)
    assert tokens.reader not in text and tokens.writer not in text


def test_control_calls_are_not_recorded(sim: SimulatorControl) -> None:
    sim.create_run("alice")
    sim.health()

    assert sim.requests() == []


def test_status_change_record_reads_since(sim: SimulatorControl) -> None:
    run_id = sim.create_run("alice")["runId"]
    sim.set_run_status(run_id, "streaming")
    mark = sim.status_changes()[-1]["seq"]
    sim.set_run_status(run_id, "failed")

    later = sim.status_changes(since=mark)

    assert [(c["run_id"], c["status"]) for c in later] == [(run_id, "failed")]
    assert set(later[0]) == {"seq", "run_id", "status", "time"}
    assert later[0]["time"] >= sim.status_changes()[0]["time"]


def test_reset_forgets_runs_but_keeps_tokens_and_repos(
    api: httpx.Client, tokens: Tokens, sim: SimulatorControl
) -> None:
    run_id = sim.create_run("alice")["runId"]
    repos = data(api.get("/repos", headers=auth(tokens.reader)))

    sim.reset()

    assert api.get(f"/runs/{run_id}", headers=auth(tokens.reader)).status_code == 404
    assert data(api.get("/repos", headers=auth(tokens.reader))) == repos
    assert [r["status"] for r in sim.requests()] == [404, 200]


def test_control_refuses_unknown_runs_and_statuses(sim: SimulatorControl) -> None:
    run_id = sim.create_run("alice")["runId"]

    with pytest.raises(httpx.HTTPStatusError) as missing:
        sim.set_run_status(MISSING_UUID, "streaming")
    with pytest.raises(httpx.HTTPStatusError) as unknown:
        sim.set_run_status(run_id, "exploded")

    assert missing.value.response.status_code == 404
    assert unknown.value.response.status_code == 400


# --- the rest of the surface ------------------------------------------------------------


def test_a_trailing_slash_is_redirected_away(api: httpx.Client, tokens: Tokens) -> None:
    response = api.get("/repos/", params={"q": "web"}, headers=auth(tokens.reader))

    assert response.status_code == 308
    assert response.headers["location"] == "/api/v1/mogplex/repos?q=web"


def test_mcp_and_secret_bearing_routes(api: httpx.Client, tokens: Tokens) -> None:
    mcp = api.get("/mcp")
    env_vars = api.get(f"/repos/{MISSING_UUID}/env-vars", headers=auth(tokens.reader))

    assert mcp.status_code == 405 and mcp.headers["allow"] == "POST, OPTIONS"
    assert api.post("/mcp", json={}).status_code == 401  # the proxy lets /mcp through without a bearer
    assert env_vars.status_code == 501 and env_vars.json()["error"]["code"] == "SERVICE_UNAVAILABLE"


# --- the web app's run page (where "Open in Mogplex" lands in the demo) ----------------


def test_a_run_has_a_web_page_with_its_status_and_escaped_text(
    simulator_server: str, sim: SimulatorControl
) -> None:
    run = sim.create_run("alice", repo_id=alice_repo(sim), prompt="<script>alert(1)</script> fix it")

    page = httpx.get(f"{simulator_server}/runs/{run['runId']}", timeout=10)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f"<h1>Run {run['runId']}</h1>" in page.text
    assert "<tr><th scope=row>Status</th><td>pending</td></tr>" in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; fix it" in page.text and "<script>" not in page.text


def test_an_unknown_run_page_is_a_404_naming_the_run(simulator_server: str) -> None:
    page = httpx.get(f"{simulator_server}/runs/{MISSING_UUID}", timeout=10)

    assert page.status_code == 404
    assert f"No run {MISSING_UUID} here." in page.text
