"""Read-only across the whole suite: what every simulator received with the board's tokens.

Invariant 2 (design.md): upstream sees only GETs on the contract's allow-list
(``ALLOWED_ENDPOINTS``), never an ``Idempotency-Key``. Each simulator a test
session starts is watched here; its request record is read (from the last
sequence number seen) before anything clears it (``/_sim/reset``) and when it
stops. The session fails at its end if any offending request was seen.

Token names say who may write. The board's tokens (``BOARD_TOKEN_NAMES``: the
demo read token and the sources the poller tests configure, and every name
starting with ``matrix_``) must only read.
A token whose name starts with ``ci`` (the scenario's CI job) or ``writer``
(tests playing a launcher) may write; a write that another token got through
(any answer below 400) is an offence too, so a launcher under a wrong name is
caught. Contract tests that send deliberately bad requests with other names
are refused upstream and are not the board's concern.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from dashboard.mogplex.client import ALLOWED_ENDPOINTS

# The demo read token, and the sources the poller, secrets and fault-matrix tests configure.
BOARD_TOKEN_NAMES = frozenset({"demo", "alice", "bob"})
BOARD_TOKEN_PREFIXES = ("matrix_", "auto_")
WRITER_PREFIXES = ("ci", "writer")
API_BASE = "/api/v1/mogplex"
_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
ALLOWED_PATHS = [
    re.compile("^" + (API_BASE if on_api else "") + re.escape(template).replace(r"\{id\}", _UUID) + "$")
    for template, on_api in ALLOWED_ENDPOINTS.items()
]


def may_write(token_name: str | None) -> bool:
    return bool(token_name) and str(token_name).startswith(WRITER_PREFIXES)


def offence(record: dict[str, Any]) -> str | None:
    """Why ``record`` (one entry of ``/_sim/requests``) breaks the read-only rule, or ``None``."""
    name = record.get("token_name")
    writes = record.get("method") != "GET" or bool(record.get("idempotency_key"))
    if name in BOARD_TOKEN_NAMES or str(name).startswith(BOARD_TOKEN_PREFIXES):
        if record.get("method") != "GET":
            return "a board token sent a non-GET"
        if record.get("idempotency_key"):
            return "a board token sent an Idempotency-Key"
        if not any(p.match(str(record.get("path"))) for p in ALLOWED_PATHS):
            return "a board token asked for a path off the allow-list"
        return None
    if writes and not may_write(name) and int(record.get("status") or 0) < 400:
        return "a write got through with a token not named ci* or writer*"
    return None


class RequestAudit:
    """Request records read from every watched simulator, and the offending ones."""

    def __init__(self) -> None:
        self.cursors: dict[str, int] = {}
        self.offences: list[str] = []
        self.seen = 0

    def watch(self, base_url: str) -> None:
        self.cursors.setdefault(base_url, 0)

    def collect(self, base_url: str) -> None:
        """Read what ``base_url`` recorded since the last look; call before a reset and at its end."""
        since = self.cursors.setdefault(base_url, 0)
        response = httpx.get(f"{base_url}/_sim/requests", params={"since": since}, timeout=30)
        response.raise_for_status()
        for record in response.json():
            self.seen += 1
            self.cursors[base_url] = max(self.cursors[base_url], int(record["seq"]))
            why = offence(record)
            if why:
                fields = {
                    k: record.get(k) for k in ("method", "path", "token_name", "status", "idempotency_key")
                }
                self.offences.append(f"{base_url}: {why}: {fields}")

    def report(self) -> str:
        return "requests breaking the read-only rule:\n" + "\n".join(self.offences)


AUDIT = RequestAudit()
