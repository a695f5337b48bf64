"""The demo's local secrets: one source per team member, and nothing already handed out is lost."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from dashboard.demo import DEMO_MEMBERS, demo_secrets


def test_a_fresh_checkout_gets_a_token_per_member_in_a_private_file(tmp_path: Path) -> None:
    made = demo_secrets(tmp_path)

    names = [name for name, _ in made.sources()]
    assert names == ["demo", *DEMO_MEMBERS]
    tokens = [token for _, token in made.sources()]
    assert len(set(tokens)) == len(tokens) and all(t.startswith("mog_") for t in tokens)
    path = tmp_path / "demo-secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert demo_secrets(tmp_path) == made


def test_a_file_from_before_the_team_keeps_its_tokens_and_gains_the_members(tmp_path: Path) -> None:
    old = {"read_token": "mog_a", "write_token": "mog_b", "ingest_token": "i", "secret_key": "k"}
    (tmp_path / "demo-secrets.json").write_text(json.dumps(old))

    upgraded = demo_secrets(tmp_path)

    assert (upgraded.read_token, upgraded.write_token, upgraded.ingest_token, upgraded.secret_key) == (
        "mog_a",
        "mog_b",
        "i",
        "k",
    )
    assert set(upgraded.member_tokens) == set(DEMO_MEMBERS)
    assert demo_secrets(tmp_path) == upgraded, "the added tokens were written, not made anew each time"
