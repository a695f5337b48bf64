"""Security settings: a clean deploy check, a strict CSP, secure cookies over https."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from django.test import Client


def _production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOGPLEX_", "DJANGO_", "BOARD_HTTPS"))}
    env.update(
        DJANGO_SETTINGS_MODULE="dashboard.settings",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="board.example.com",
        MOGPLEX_BASE_URL="https://mogplex.com",
        MOGPLEX_TOKEN="mog_" + "x" * 24,
        BOARD_HTTPS="true",
        **extra,
    )
    return env


def test_deploy_check_is_clean_with_production_settings() -> None:
    proc = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues" in proc.stdout


def test_pages_carry_a_csp_without_inline_script(client: Client) -> None:
    response = client.get("/healthz")
    policy = response.headers["Content-Security-Policy"]
    script_src = next(d for d in policy.split(";") if d.strip().startswith("script-src"))
    assert script_src.split() == ["script-src", "'self'"]
    assert "frame-ancestors 'none'" in policy
    assert response.headers["X-Frame-Options"] == "DENY"
