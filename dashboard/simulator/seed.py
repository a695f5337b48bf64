"""Seeded, deterministic catalogue data: each user's repos and agents, the model list, profiles."""

from __future__ import annotations

import random
import uuid
import zlib
from dataclasses import dataclass
from typing import Any

REPO_NAMES = ("acme/api", "acme/billing", "acme/docs", "acme/infra", "acme/mobile", "acme/web")
HIDDEN_REPO_NAME = "acme/legacy-archive"
ROOT_DIRECTORIES = {"acme/web": "apps/web", "acme/mobile": "app"}
SYNCED_ONLY_REPO_NAMES = frozenset({"acme/docs"})


def seeded_uuid(rng: random.Random) -> str:
    """A UUID v4 drawn from ``rng``, so seeded data gets the same ids on every start."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def user_rng(seed: int, user: str, purpose: str) -> random.Random:
    """A generator that depends only on the seed, the user and what it is for."""
    return random.Random(zlib.crc32(f"{seed}:{user}:{purpose}".encode()))


@dataclass
class Repo:
    """A repo row. ``app_covered`` repos carry the user's installation id while the App covers them."""

    id: str
    user: str
    full_name: str
    installation_id: int | None
    default_branch: str | None
    root_directory: str | None
    hidden: bool = False
    app_covered: bool = True

    def as_json(self, *, app_installed: bool = True) -> dict[str, Any]:
        return {
            "id": self.id,
            "full_name": self.full_name,
            # Repos synced through OAuth, or no longer covered by an installation, have none.
            "installation_id": self.installation_id if app_installed and self.app_covered else None,
            "default_branch": self.default_branch,
            "root_directory": self.root_directory,
        }


def seed_repos(seed: int, user: str) -> list[Repo]:
    """Six visible ``acme/...`` repos (``acme/docs`` synced only, outside the App) and one hidden one."""
    rng = user_rng(seed, user, "repos")
    installation_id = rng.randrange(10_000_000, 99_999_999)
    repos = [
        Repo(
            id=seeded_uuid(rng),
            user=user,
            full_name=name,
            installation_id=installation_id,
            default_branch="develop" if name == "acme/infra" else "main",
            root_directory=ROOT_DIRECTORIES.get(name),
            app_covered=name not in SYNCED_ONLY_REPO_NAMES,
        )
        for name in REPO_NAMES
    ]
    repos.append(
        Repo(
            id=seeded_uuid(rng),
            user=user,
            full_name=HIDDEN_REPO_NAME,
            installation_id=None,
            default_branch=None,
            root_directory=None,
            hidden=True,
            app_covered=False,
        )
    )
    return repos


MODELS: tuple[dict[str, Any], ...] = (
    {
        "id": "anthropic/claude-sonnet-4.5",
        "provider": "anthropic",
        "name": "Claude Sonnet 4.5",
        "contextLength": 200_000,
        "capabilities": ["tools", "vision", "reasoning"],
        "pricing": {"input": 3e-06, "output": 1.5e-05},
    },
    {
        "id": "anthropic/claude-haiku-4.5",
        "provider": "anthropic",
        "name": "Claude Haiku 4.5",
        "contextLength": 200_000,
        "capabilities": ["tools", "vision"],
        "pricing": {"input": 1e-06, "output": 5e-06},
    },
    {
        "id": "google/gemini-2.5-pro",
        "provider": "google",
        "name": "Gemini 2.5 Pro",
        "contextLength": 1_048_576,
        "capabilities": ["tools", "vision", "reasoning"],
        "pricing": {"input": 1.25e-06, "output": 1e-05},
    },
    {
        "id": "openai/gpt-5-codex",
        "provider": "openai",
        "name": "GPT-5 Codex",
        "contextLength": 400_000,
        "capabilities": ["tools", "reasoning"],
        "pricing": {"input": 1.25e-06, "output": 1e-05},
    },
    {
        "id": "openai/gpt-5-mini",
        "provider": "openai",
        "name": "GPT-5 mini",
        "contextLength": None,
        "capabilities": ["tools"],
        "pricing": {"input": None, "output": None},
    },
)

DEFAULT_MODEL_ID = "openai/gpt-5-codex"

# Template names as lib/agents/templates names them; a preset's id is ``preset:<name>``.
PRESET_TEMPLATES: tuple[tuple[str, str, str], ...] = (
    ("PR-REVIEWER", "General PR review: scope, tests, rollout safety, regressions", "code-review"),
    ("NEXTJS-REVIEWER", "Next.js routing, server components and caching review", "code-review"),
    ("PERFORMANCE-AUDITOR", "Bundle size, rendering and query performance audit", "performance"),
    ("SECURITY-SCAN", "Auth, secrets and injection review", "security"),
    ("DATABASE-REVIEWER", "Schema, migration and query review", "data"),
    ("API-REVIEWER", "Route validation and response shape review", "api"),
    ("FRONTEND-REVIEWER", "Accessibility and component structure review", "frontend"),
    ("SEO-AUDITOR", "Metadata, sitemaps and crawlability audit", "seo"),
    ("CODE-QUALITY", "Dead code, duplication and naming review", "code-quality"),
)
# The user forked this template, so its preset is not listed again.
FORKED_TEMPLATE = "SECURITY-SCAN"


def seed_agents(seed: int, user: str) -> list[dict[str, Any]]:
    """The agent list as ``GET /agents`` returns it: presets first (``slug: null``, the user's
    default model), then the user's own by name."""
    rng = user_rng(seed, user, "agents")
    presets = [
        {
            "id": f"preset:{name}",
            "name": name,
            "slug": None,
            "model": DEFAULT_MODEL_ID,
            "description": description,
            "category": category,
            "preset": True,
        }
        for name, description, category in PRESET_TEMPLATES
        if name != FORKED_TEMPLATE
    ]
    own: list[dict[str, Any]] = [
        {
            "id": seeded_uuid(rng),
            "name": "Security scan (team)",
            "slug": "security-scan-team",
            "model": "anthropic/claude-sonnet-4.5",
            "description": "Our fork of the security scan, with the repo's threat model.",
            "category": "security",
            "preset": False,
        },
        {
            "id": seeded_uuid(rng),
            "name": "Dependency bumper",
            "slug": "dependency-bumper",
            "model": "anthropic/claude-haiku-4.5",
            "description": None,
            "category": None,
            "preset": False,
        },
    ]
    own.sort(key=lambda agent: agent["name"])
    return presets + own


# --- account readiness (GET /api/auth/user) ------------------------------------------

GITHUB_STATES = (
    "disconnected",
    "oauth_connected",
    "app_install_pending",
    "app_installed",
    "app_installed_with_synced_repos",
)
VERCEL_PLATFORM_STATES = ("ready", "not_configured")


@dataclass
class AccountState:
    """What decides a user's ``/api/auth/user`` answer, their repos' coverage and their model list."""

    github_state: str = "app_installed_with_synced_repos"
    github_app_available: bool = True
    allow_platform_ai: bool = True
    allow_platform_sandbox: bool = True
    vercel_platform_state: str = "ready"
    models_usable: bool = True
    # Answer {"user": null} to this user's PATs, as Mogplex does for a rate-limited one.
    user_null: bool = False

    def __post_init__(self) -> None:
        if self.github_state not in GITHUB_STATES:
            raise ValueError(f"unknown github_state {self.github_state!r}; use one of {list(GITHUB_STATES)}")
        if self.vercel_platform_state not in VERCEL_PLATFORM_STATES:
            raise ValueError(f"vercel_platform_state must be one of {list(VERCEL_PLATFORM_STATES)}")

    @property
    def repos_synced(self) -> bool:
        """Whether the user has repos at all (only once GitHub is connected or installed)."""
        return self.github_state in ("oauth_connected", "app_installed", "app_installed_with_synced_repos")

    @property
    def repos_covered(self) -> bool:
        """Whether synced repos carry their installation id (the App covers them)."""
        return self.github_state == "app_installed_with_synced_repos"

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def github_readiness(
    *,
    has_github_token: bool,
    github_app_available: bool,
    installation_count: int,
    synced_repo_count: int,
    covered_repo_count: int,
    install_pending: bool,
) -> dict[str, Any]:
    """The ``github_*`` fields, as ``deriveGithubState`` (``lib/github-state.ts``) makes them."""
    app_connected = installation_count > 0 or covered_repo_count > 0
    if app_connected and covered_repo_count > 0:
        state = "app_installed_with_synced_repos"
    elif app_connected:
        state = "app_installed"
    elif github_app_available and install_pending:
        state = "app_install_pending"
    elif has_github_token:
        state = "oauth_connected"
    else:
        state = "disconnected"
    install = {"kind": "install", "label": "Install GitHub App", "href": "/api/auth/github"}
    action: dict[str, str] | None
    label, detail, action = (
        "Not connected",
        "Install the GitHub App to sync repositories and enable triggers.",
        install
        if github_app_available
        else {"kind": "connect", "label": "Connect GitHub", "href": "/api/auth/github"},
    )
    if state == "oauth_connected":
        label = "OAuth only"
        detail = (
            "Repositories can sync through OAuth, but triggers and automation require the GitHub App."
            if github_app_available
            else "GitHub is connected through OAuth."
        )
        action = install if github_app_available else None
    elif state == "app_install_pending":
        label = "Install pending"
        detail = "Finish the GitHub App install in GitHub. Mogplex will pick up the installation and sync coverage."
        action = {
            "kind": "complete_install",
            "label": "Complete GitHub App install",
            "href": "/api/auth/github",
        }
    elif state == "app_installed":
        label = "App installed"
        detail = "The GitHub App is installed, but no covered repositories are synced into Projects yet."
        action = {"kind": "open_spaces", "label": "Open Projects", "href": "/projects/repositories"}
    elif state == "app_installed_with_synced_repos":
        label = "Ready"
        detail = "GitHub App coverage is active and synced repositories are available in Projects."
        action = None
    return {
        "github_state": state,
        "github_connected": has_github_token or app_connected,
        "github_app_connected": app_connected,
        "github_connection_mode": "app" if app_connected else "oauth" if has_github_token else None,
        "github_app_available": github_app_available,
        "github_install_pending": github_app_available and install_pending and not app_connected,
        "github_installation_count": max(0, installation_count),
        "github_synced_repo_count": max(0, synced_repo_count),
        "github_covered_repo_count": max(0, covered_repo_count),
        "github_status_label": label,
        "github_status_detail": detail,
        "github_primary_action": action,
    }


def vercel_capability(platform_state: str) -> dict[str, Any]:
    """``deriveVercelCapability`` (``lib/vercel/capabilities.ts``) for a user with no linked Vercel."""
    ready = platform_state == "ready"
    prefix = "Mogplex platform Vercel is ready." if ready else "Mogplex platform Vercel is not configured."
    return {
        "platformState": platform_state,
        "personalState": "not_linked",
        "linkedProjectState": "none",
        "canUsePlatformOps": ready,
        "canLinkUserBillingProject": False,
        "canUseUserBilling": False,
        "statusLabel": "Platform ready" if ready else "Platform not configured",
        "statusDetail": f"{prefix} Sign in with Vercel is identity-only; user-owned compute requires a "
        "future API-capable integration.",
    }


def user_profile(seed: int, user: str, account: AccountState, repos: list[Repo]) -> dict[str, Any]:
    """What ``GET /api/auth/user`` returns under ``user`` for a valid PAT (``app/api/auth/user/route.ts``)."""
    rng = user_rng(seed, user, "profile")
    synced = repos if account.repos_synced else []
    installed = account.github_state in ("app_installed", "app_installed_with_synced_repos")
    covered = [repo for repo in synced if repo.app_covered] if account.repos_covered else []
    return {
        "id": seeded_uuid(rng),
        "email": f"{user}@acme.example",
        "username": user,
        "name": user.replace("-", " ").replace("_", " ").title(),
        "avatar_url": None,
        "github_username": f"{user}-acme" if account.github_state != "disconnected" else None,
        **github_readiness(
            has_github_token=account.github_state != "disconnected",
            github_app_available=account.github_app_available,
            installation_count=1 if installed else 0,
            synced_repo_count=len(synced),
            covered_repo_count=len(covered),
            install_pending=account.github_state == "app_install_pending",
        ),
        "platform_access": {
            "allowPlatformAi": account.allow_platform_ai,
            "allowPlatformSandbox": account.allow_platform_sandbox,
        },
        "vercel": vercel_capability(account.vercel_platform_state),
        "account_vercel_project_id": None,
        "account_vercel_team_id": None,
    }
