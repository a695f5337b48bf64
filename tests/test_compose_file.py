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

import pytest

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
    assert {"web", "worker", "beat", "redis", "simulator"} <= services

    resolved = compose(project, "config").stdout
    assert "gunicorn dashboard.wsgi" in resolved
    assert "celery -A dashboard worker" in resolved and "celery -A dashboard beat" in resolved
    assert re.search(r"profiles:\s*\n\s*- demo", resolved), "the simulator runs only under the demo profile"
