"""Account readiness in the simulator: ``/api/auth/user`` with Mogplex's field set, for every state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dashboard.demo import new_pat
from dashboard.simulator.control import SimulatorControl

USER_FIELDS = {
    "id",
    "email",
    "username",
    "name",
    "avatar_url",
    "github_username",
    "github_state",
    "github_connected",
    "github_app_connected",
    "github_connection_mode",
    "github_app_available",
    "github_install_pending",
    "github_installation_count",
    "github_synced_repo_count",
    "github_covered_repo_count",
    "github_status_label",
    "github_status_detail",
    "github_primary_action",
    "platform_access",
    "vercel",
    "account_vercel_project_id",
    "account_vercel_team_id",
}
VERCEL_FIELDS = {
    "platformState",
    "personalState",
    "linkedProjectState",
    "canUsePlatformOps",
    "canLinkUserBillingProject",
    "canUseUserBilling",
    "statusLabel",
    "statusDetail",
}


@pytest.fixture
def token(sim: SimulatorControl) -> str:
    made = new_pat()
    sim.register_token("reader", made, ["read"], user="alice")
    return made


@pytest.fixture
def http(simulator_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=simulator_server, timeout=10) as client:
        yield client


def me(http: httpx.Client, token: str) -> Any:
    response = http.get("/api/auth/user", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    return response.json()["user"]


def listed(http: httpx.Client, token: str, what: str) -> list[dict[str, Any]]:
    response = http.get(f"/api/v1/mogplex/{what}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    return list(response.json()["data"][what])


def test_a_ready_account_has_mogplexs_whole_field_set(http: httpx.Client, token: str) -> None:
    user = me(http, token)

    assert set(user) == USER_FIELDS
    assert set(user["vercel"]) == VERCEL_FIELDS
    assert user["github_state"] == "app_installed_with_synced_repos"
    assert (user["github_status_label"], user["github_primary_action"]) == ("Ready", None)
    assert user["github_status_detail"] == (
        "GitHub App coverage is active and synced repositories are available in Projects."
    )
    assert user["github_connection_mode"] == "app"
    # Counts are over the repo rows: six visible and one hidden; acme/docs and the hidden one are synced only.
    assert (user["github_synced_repo_count"], user["github_covered_repo_count"]) == (7, 5)
    assert user["platform_access"] == {"allowPlatformAi": True, "allowPlatformSandbox": True}
    assert (user["vercel"]["platformState"], user["vercel"]["statusLabel"]) == ("ready", "Platform ready")


@pytest.mark.parametrize(
    ("state", "label", "action", "repos", "covered"),
    [
        ("disconnected", "Not connected", "install", 0, 0),
        ("oauth_connected", "OAuth only", "install", 6, 0),
        ("app_install_pending", "Install pending", "complete_install", 0, 0),
        ("app_installed", "App installed", "open_spaces", 6, 0),
        ("app_installed_with_synced_repos", "Ready", None, 6, 5),
    ],
)
def test_every_github_state_with_its_label_next_action_and_repos(
    http: httpx.Client,
    token: str,
    sim: SimulatorControl,
    state: str,
    label: str,
    action: str | None,
    repos: int,
    covered: int,
) -> None:
    sim.set_account("alice", github_state=state)

    user = me(http, token)
    visible = listed(http, token, "repos")

    assert user["github_state"] == state
    assert user["github_status_label"] == label
    assert user["github_status_detail"].endswith(".")
    assert (user["github_primary_action"] or {}).get("kind") == action
    if action is not None:
        assert user["github_primary_action"]["href"].startswith("/")
    assert len(visible) == repos
    assert sum(1 for repo in visible if repo["installation_id"] is not None) == covered


def test_oauth_only_without_the_app_has_no_next_action(
    http: httpx.Client, token: str, sim: SimulatorControl
) -> None:
    sim.set_account("alice", github_state="oauth_connected", github_app_available=False)

    user = me(http, token)

    assert (user["github_state"], user["github_primary_action"]) == ("oauth_connected", None)
    assert user["github_status_detail"] == "GitHub is connected through OAuth."


def test_platform_access_compute_and_models_follow_the_account(
    http: httpx.Client, token: str, sim: SimulatorControl
) -> None:
    sim.set_account(
        "alice",
        allow_platform_ai=False,
        allow_platform_sandbox=False,
        vercel_platform_state="not_configured",
        models_usable=False,
    )

    user = me(http, token)

    assert user["platform_access"] == {"allowPlatformAi": False, "allowPlatformSandbox": False}
    assert user["vercel"]["statusLabel"] == "Platform not configured"
    assert user["vercel"]["canUsePlatformOps"] is False
    assert listed(http, token, "models") == []


def test_user_null_for_a_valid_token_and_when_rate_limited(
    http: httpx.Client, token: str, sim: SimulatorControl
) -> None:
    sim.set_account("alice", user_null=True)
    assert me(http, token) is None
    sim.set_account("alice", user_null=False)
    assert me(http, token)["username"] == "alice"

    sim.configure(limit=1)
    assert me(http, token) is None


def test_reset_makes_every_account_ready_again(http: httpx.Client, token: str, sim: SimulatorControl) -> None:
    sim.set_account("alice", github_state="disconnected", models_usable=False)

    sim.reset()

    assert me(http, token)["github_state"] == "app_installed_with_synced_repos"
    assert sim.account("alice")["models_usable"] is True


def test_bad_account_input_is_refused_and_changes_nothing(sim: SimulatorControl) -> None:
    for fields in ({"github_state": "ready"}, {"colour": "red"}, {"models_usable": "yes"}):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            sim.set_account("alice", **fields)
        assert refused.value.response.status_code == 400
    assert sim.account("alice")["github_state"] == "app_installed_with_synced_repos"
