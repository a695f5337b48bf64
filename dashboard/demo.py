"""Local secrets for the demo: made once per checkout, kept in ``var/``, never committed.

When no Mogplex is configured the board reads the bundled simulator. The
simulator and the board must agree on tokens without any being in the
repository, so both read them from ``var/demo-secrets.json``, created on first
use with mode 0600.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

BASE62 = string.ascii_letters + string.digits


def new_pat() -> str:
    """A token shaped like a Mogplex PAT: ``mog_`` plus 24 base62 characters."""
    return "mog_" + "".join(secrets.choice(BASE62) for _ in range(24))


@dataclass(frozen=True)
class DemoSecrets:
    read_token: str  # the board's own read-scoped PAT
    write_token: str  # the scenario's CI job, which starts runs
    ingest_token: str  # the board's ingest endpoint
    secret_key: str  # Django's SECRET_KEY when none is configured


def demo_secrets(var_dir: Path) -> DemoSecrets:
    path = var_dir / "demo-secrets.json"
    if path.exists():
        return DemoSecrets(**json.loads(path.read_text()))
    made = DemoSecrets(
        read_token=new_pat(),
        write_token=new_pat(),
        ingest_token=secrets.token_urlsafe(32),
        secret_key=secrets.token_urlsafe(50),
    )
    var_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(made.__dict__, fh)
    # Two processes may race here on a fresh checkout; the first rename wins and
    # the loser reads what the winner wrote.
    try:
        os.link(tmp, path)
    except FileExistsError:
        os.unlink(tmp)
        return DemoSecrets(**json.loads(path.read_text()))
    os.unlink(tmp)
    return made
