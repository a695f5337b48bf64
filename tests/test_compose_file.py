"""The compose file the operations page tells operators to use, validated by Compose itself.

No container engine runs here; ``docker-compose config`` (Compose v1, Debian's
``docker-compose`` package, installed by ``.ci/run``) resolves and validates the
file as ``docker compose up`` would read it, with ``.env.example`` as the ``.env``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def compose(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", *args], cwd=workdir, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed: apt-get install docker-compose (.ci/run does)")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    return tmp_path


def test_compose_file_is_valid_with_the_documented_env(project: Path) -> None:
    checked = compose(project, "config", "-q")
    assert checked.returncode == 0, checked.stderr
    services = set(compose(project, "config", "--services").stdout.split())
    assert services == {"web", "worker", "beat", "notifier", "db", "redis", "simulator"}

    resolved = compose(project, "config").stdout
    web = resolved_config(project)["services"]["web"]["command"]
    assert "gunicorn dashboard.asgi --worker-class asgi" in " ".join(web.split())
    assert "celery -A dashboard -q worker" in resolved and "celery -A dashboard -q beat" in resolved


def resolved_config(project: Path, *profile: str) -> dict[str, Any]:
    out = compose(project, *profile, "config")
    assert out.returncode == 0, out.stderr
    config: dict[str, Any] = yaml.safe_load(out.stdout)
    return config


def test_the_stack_runs_as_in_production(project: Path) -> None:
    services = resolved_config(project, "--profile", "demo")["services"]

    # PostgreSQL and Valkey are the default stores; Valkey keeps an append-only file.
    assert services["db"]["image"].startswith("postgres:")
    assert services["web"]["environment"]["DATABASE_URL"] == "postgres://board@db:5432/board"
    assert services["web"]["environment"]["PGPASSWORD"] == services["db"]["environment"]["POSTGRES_PASSWORD"]
    assert "--appendonly yes" in services["redis"]["command"]
    assert services["redis"]["volumes"], "the append-only file lives on a volume"
    # The board's processes wait for healthy stores, and worker and beat are health-checked
    # on the poller's heartbeat.
    for name in ("web", "worker", "beat", "notifier"):
        assert services[name]["depends_on"] == {
            "db": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }
    for name in ("worker", "beat"):
        assert services[name]["healthcheck"]["test"] == ["CMD", "python", "manage.py", "poller_health"]
    assert services["notifier"]["healthcheck"]["test"] == ["CMD", "python", "manage.py", "notifier_health"]
    # Everything but the simulator starts by default; the simulator only with the demo profile.
    assert {name for name, service in services.items() if "profiles" not in service} == {
        "web",
        "worker",
        "beat",
        "notifier",
        "db",
        "redis",
    }

    # The poller's worker and the notifier consume their own queues.
    def command(name: str) -> str:
        given = services[name]["command"]
        return " ".join(given) if isinstance(given, list) else str(given)

    assert "-Q celery" in command("worker") and "-Q notify" in command("notifier")
    assert services["simulator"]["profiles"] == ["demo"]


def test_the_image_runs_as_an_unprivileged_user() -> None:
    users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert users, "the Dockerfile sets a USER"
    assert users[-1] not in {"root", "0", "0:0"}, "the last USER is not root"
