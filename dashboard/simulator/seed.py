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


def seeded_uuid(rng: random.Random) -> str:
    """A UUID v4 drawn from ``rng``, so seeded data gets the same ids on every start."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def user_rng(seed: int, user: str, purpose: str) -> random.Random:
    """A generator that depends only on the seed, the user and what it is for."""
    return random.Random(zlib.crc32(f"{seed}:{user}:{purpose}".encode()))


@dataclass
class Repo:
    id: str
    user: str
    full_name: str
    installation_id: int | None
    default_branch: str | None
    root_directory: str | None
    hidden: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "full_name": self.full_name,
            "installation_id": self.installation_id,
            "default_branch": self.default_branch,
            "root_directory": self.root_directory,
        }


def seed_repos(seed: int, user: str) -> list[Repo]:
    """Six visible ``acme/...`` repos and one hidden one for ``user``."""
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

PRESET_AGENTS: tuple[dict[str, Any], ...] = (
    {
        "slug": "code-reviewer",
        "name": "Code reviewer",
        "model": "anthropic/claude-sonnet-4.5",
        "description": "Reviews a pull request and leaves comments.",
        "category": "review",
    },
    {
        "slug": "bug-fixer",
        "name": "Bug fixer",
        "model": "openai/gpt-5-codex",
        "description": "Reproduces a bug, fixes it and opens a pull request.",
        "category": "engineering",
    },
    {
        "slug": "docs-writer",
        "name": "Docs writer",
        "model": "anthropic/claude-haiku-4.5",
        "description": None,
        "category": None,
    },
)


def seed_agents(seed: int, user: str) -> list[dict[str, Any]]:
    """The agent list as ``GET /agents`` returns it: presets first, then the user's own by name.

    The user has forked the ``bug-fixer`` preset, so that preset is not listed again.
    """
    rng = user_rng(seed, user, "agents")
    forked = "bug-fixer"
    presets = [
        {
            "id": f"preset:{preset['slug']}",
            "name": preset["name"],
            "slug": preset["slug"],
            "model": preset["model"],
            "description": preset["description"],
            "category": preset["category"],
            "preset": True,
        }
        for preset in PRESET_AGENTS
        if preset["slug"] != forked
    ]
    own: list[dict[str, Any]] = [
        {
            "id": seeded_uuid(rng),
            "name": "Bug fixer (team)",
            "slug": "bug-fixer-team",
            "model": "openai/gpt-5-codex",
            "description": "Our fork of the bug fixer, with the repo's test commands.",
            "category": "engineering",
            "preset": False,
        },
        {
            "id": seeded_uuid(rng),
            "name": "Dependency bumper",
            "slug": None,
            "model": "anthropic/claude-haiku-4.5",
            "description": None,
            "category": None,
            "preset": False,
        },
    ]
    own.sort(key=lambda agent: agent["name"])
    return presets + own


def user_profile(seed: int, user: str) -> dict[str, Any]:
    """What ``GET /api/auth/user`` returns under ``user`` for a valid PAT."""
    rng = user_rng(seed, user, "profile")
    return {
        "id": seeded_uuid(rng),
        "email": f"{user}@acme.example",
        "username": user,
        "name": user.replace("-", " ").replace("_", " ").title(),
        "avatar_url": None,
        "github_username": f"{user}-acme",
        "github_state": "ready",
        "github_connected": True,
        "github_app_installed": True,
        "github_installation_count": 1,
        "github_repo_count": len(REPO_NAMES),
        "github_status_label": "Connected",
        "github_status_detail": "GitHub App installed on acme",
        "platform_access": {"allowPlatformAi": True, "allowPlatformSandbox": True},
        "vercel": {"connected": False, "canDeploy": False, "label": "Not connected"},
        "account_vercel_project_id": None,
        "account_vercel_team_id": None,
    }
