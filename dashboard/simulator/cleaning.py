"""Payload cleaning on read, as Mogplex does it for run events (contract section 6.5).

Events are stored as written; ``clean_payload`` is applied when they are served.
Sandbox logs and an event's ``message`` and ``toolName`` are never cleaned.
"""

from __future__ import annotations

import json
import re
from typing import Any

REDACTED = "[redacted]"
TRUNCATED = "[truncated]"
MAX_STRING_CHARS = 2_000
MAX_ENTRIES = 25
# A container this many levels below the payload root becomes "[truncated]".
MAX_DEPTH = 3
MAX_PAYLOAD_CHARS = 20_000

_EXACT_KEYS = frozenset(
    {
        "env",
        "environment",
        "envvars",
        "runtimeenv",
        "runtimeenvironment",
        "githubtoken",
        "ghtoken",
        "aibillingsource",
        "mogplexaibillingsource",
    }
)
_KEY_FRAGMENTS = (
    "authorization",
    "api_key",
    "api-key",
    "apikey",
    "token",
    "secret",
    "password",
    "cookie",
    "credential",
    "session",
    "jwt",
)
_NOT_KEY_CHARS = re.compile(r"[^a-z0-9]")
_BEARER = re.compile(r"Bearer\s+[^\s\"',;]+", re.IGNORECASE)
_ACCESS_TOKEN = re.compile(r"x-access-token:[^@\s]*@", re.IGNORECASE)
_SECRETS = re.compile(
    r"\b(?:gh[oprsu]_[A-Za-z0-9_]+|github_pat_[A-Za-z0-9_]+|sk-[A-Za-z0-9_-]{8,}|sb_secret_[A-Za-z0-9_-]+)"
)


def dumps(value: Any) -> str:
    """Serialise like JavaScript's ``JSON.stringify``: compact, non-ASCII kept."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def is_redacted_key(key: str) -> bool:
    """Whether a payload key names something secret (rules 1 and 2)."""
    lowered = key.lower()
    if _NOT_KEY_CHARS.sub("", lowered) in _EXACT_KEYS:
        return True
    return any(fragment in lowered for fragment in _KEY_FRAGMENTS)


def _truncate(text: str) -> str:
    if len(text) <= MAX_STRING_CHARS:
        return text
    return f"{text[:MAX_STRING_CHARS]}\n...[truncated {len(text) - MAX_STRING_CHARS} chars]"


def _clean_string(text: str, depth: int) -> str:
    if text.startswith(("{", "[")):
        try:
            parsed = json.loads(text)
        except ValueError:
            pass
        else:
            text = dumps(_clean(parsed, depth))
    text = _BEARER.sub("Bearer [redacted]", text)
    text = _ACCESS_TOKEN.sub("x-access-token:[redacted]@", text)
    text = _SECRETS.sub(REDACTED, text)
    return _truncate(text)


def _clean(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return _clean_string(value, depth)
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return TRUNCATED
        cleaned: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index >= MAX_ENTRIES:
                break
            cleaned[key] = REDACTED if is_redacted_key(str(key)) else _clean(item, depth + 1)
        return cleaned
    if isinstance(value, list):
        if depth >= MAX_DEPTH:
            return TRUNCATED
        return [_clean(item, depth + 1) for item in value[:MAX_ENTRIES]]
    return value


def clean_payload(payload: Any) -> Any:
    """Return the payload as ``GET /runs/{id}/events`` serves it."""
    cleaned = _clean(payload, 0)
    text = dumps(cleaned)
    if len(text) > MAX_PAYLOAD_CHARS:
        return {"truncated": True, "payloadPreview": text[:MAX_PAYLOAD_CHARS]}
    return cleaned
