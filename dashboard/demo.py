"""Local secrets for the demo: made once per checkout, kept in ``var/``, never committed.

When no Mogplex is configured the board reads the bundled simulator. The
simulator and the board must agree on tokens without any being in the
repository, so both read them from ``var/demo-secrets.json``, created on first
use with mode 0600.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path

BASE62 = string.ascii_letters + string.digits


def new_pat() -> str:
    """A token shaped like a Mogplex PAT: ``mog_`` plus 24 base62 characters."""
    return "mog_" + "".join(secrets.choice(BASE62) for _ in range(24))


# The demo team: one read token (one board source) per member, besides the board's own
# ``demo`` token. Their accounts differ (see dashboard.simulator.scenario.TEAM_ACCOUNTS).
DEMO_MEMBERS: tuple[str, ...] = ("ada", "ben", "cleo", "dev", "eve")


@dataclass(frozen=True)
class DemoSecrets:
    read_token: str  # the board's own read-scoped PAT (source and user ``demo``)
    write_token: str  # the scenario's CI job, which starts runs
    ingest_token: str  # the board's ingest endpoint
    secret_key: str  # Django's SECRET_KEY when none is configured
    member_tokens: dict[str, str] = field(default_factory=dict)  # member -> read-scoped PAT

    def sources(self) -> list[tuple[str, str]]:
        """``(name, token)`` of each demo source: ``demo`` first, then the team members."""
        return [("demo", self.read_token), *((name, self.member_tokens[name]) for name in DEMO_MEMBERS)]


def demo_secrets(var_dir: Path) -> DemoSecrets:
    """The checkout's demo secrets, made on first use; a file from before a member joined gains their token."""
    path = var_dir / "demo-secrets.json"
    var_dir.mkdir(parents=True, exist_ok=True)
    # The board and the simulator start together: one of them writes, the other reads what it wrote.
    with open(var_dir / "demo-secrets.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            stored = json.loads(path.read_text())
            members = dict(stored.get("member_tokens") or {})
            if all(name in members for name in DEMO_MEMBERS):
                return DemoSecrets(**{**stored, "member_tokens": members})
            # Tokens already handed out stay; only the missing ones are made.
            made = DemoSecrets(
                **{
                    **stored,
                    "member_tokens": {**{name: new_pat() for name in DEMO_MEMBERS}, **members},
                }
            )
        else:
            made = DemoSecrets(
                read_token=new_pat(),
                write_token=new_pat(),
                ingest_token=secrets.token_urlsafe(32),
                secret_key=secrets.token_urlsafe(50),
                member_tokens={name: new_pat() for name in DEMO_MEMBERS},
            )
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(made), fh)
        os.replace(tmp, path)
        return made
