"""Payload cleaning on read, as Mogplex does it for run events (contract section 6.5).

Events are stored as written; ``clean_payload`` is applied when they are served,
in Mogplex's order (``lib/mogplex-api/run-control.ts`` then ``lib/ai-telemetry.ts``):
keys that name environments or billing sources are redacted at any depth; then
the telemetry sanitiser runs with the read limits (2,000 characters, 25 entries,
depth 3), redacting secret-looking keys and text; a result longer than 20,000
characters becomes a preview. A string that, trimmed, starts with ``{`` or ``[``
and parses as a JSON object or array is sanitised from depth 0 and re-serialised.
Sandbox logs and an event's ``message`` and ``toolName`` are never cleaned.

Lengths are counted in code points; JavaScript counts UTF-16 units, which
differs only for characters outside the Basic Multilingual Plane.
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

# run-control.ts: compared after lowercasing and keeping only [a-z0-9].
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
_NOT_KEY_CHARS = re.compile(r"[^a-z0-9]")
# ai-telemetry.ts SENSITIVE_KEY_PATTERN, matched anywhere in the key.
_SENSITIVE_KEY = re.compile(
    r"(authorization|api[_-]?key|token|secret|password|cookie|credential|client_secret"
    r"|access_token|refresh_token|session|jwt)",
    re.IGNORECASE,
)
# ai-telemetry.ts redactSecretsInText; JavaScript's \w and \b are ASCII-only.
_TEXT_SECRETS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bbearer\s+[\w+./=~-]+\b", re.IGNORECASE | re.ASCII), "Bearer [redacted]"),
    (re.compile(r"(x-access-token:)[^\s@]+@", re.IGNORECASE), r"\1[redacted]@"),
    (re.compile(r"\b(?:gh[oprsu]_\w+|github_pat_\w+)\b", re.ASCII), REDACTED),
    (re.compile(r"\bsk-[\w-]{8,}\b", re.ASCII), REDACTED),
    (re.compile(r"\bsb_secret_[\w-]+\b", re.ASCII), REDACTED),
)


def dumps(value: Any) -> str:
    """Serialise like JavaScript's ``JSON.stringify``: compact, non-ASCII kept."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _reject_constant(name: str) -> Any:
    # JSON.parse knows no NaN or Infinity.
    raise ValueError(name)


def is_redacted_key(key: str) -> bool:
    """Whether a payload key names something secret (either of the two rules)."""
    return _NOT_KEY_CHARS.sub("", key.lower()) in _EXACT_KEYS or _SENSITIVE_KEY.search(key) is not None


def _redact_named_fields(value: Any) -> Any:
    if isinstance(value, list):
        return [_redact_named_fields(item) for item in value]
    if isinstance(value, dict):
        return {
            key: REDACTED
            if _NOT_KEY_CHARS.sub("", str(key).lower()) in _EXACT_KEYS
            else _redact_named_fields(item)
            for key, item in value.items()
        }
    return value


def redact_text(text: str) -> str:
    """Bearer values, ``x-access-token:…@`` credentials and token-shaped words become ``[redacted]``."""
    for pattern, replacement in _TEXT_SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _truncate(text: str) -> str:
    if len(text) <= MAX_STRING_CHARS:
        return text
    return f"{text[:MAX_STRING_CHARS]}\n...[truncated {len(text) - MAX_STRING_CHARS} chars]"


def _json_in_text(text: str) -> str | None:
    trimmed = text.strip()
    if not trimmed.startswith(("{", "[")):
        return None
    try:
        parsed = json.loads(trimmed, parse_constant=_reject_constant)
    except ValueError:
        return None
    if not isinstance(parsed, dict | list):
        return None
    return dumps(_sanitise(parsed, 0))


def _sanitise_text(text: str) -> str:
    cleaned = _json_in_text(text)
    return _truncate(redact_text(text if cleaned is None else cleaned))


def _sanitise(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return _sanitise_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= MAX_DEPTH:
        return TRUNCATED
    if isinstance(value, list):
        return [_sanitise(item, depth + 1) for item in value[:MAX_ENTRIES]]
    if isinstance(value, dict):
        return {
            key: REDACTED if _SENSITIVE_KEY.search(str(key)) else _sanitise(item, depth + 1)
            for key, item in list(value.items())[:MAX_ENTRIES]
        }
    return str(value)


def clean_payload(payload: Any) -> Any:
    """Return the payload as ``GET /runs/{id}/events`` serves it."""
    cleaned = _sanitise(_redact_named_fields(payload), 0)
    if not isinstance(cleaned, dict):
        # sanitizeTelemetryRecord: anything but an object is served as {}.
        return {}
    text = dumps(cleaned)
    if len(text) > MAX_PAYLOAD_CHARS:
        return {"truncated": True, "payloadPreview": text[:MAX_PAYLOAD_CHARS]}
    return cleaned
