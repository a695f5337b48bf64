"""Clipping upstream text by what a person sees as characters, and payloads as text.

Agents write Mogplex's strings: emoji, accents written as a letter and a combining
mark, flags, family emoji joined with zero-width joiners. A cut at a code point
can leave half of one (a lone combining mark, a broken flag), and JSON's ASCII
escapes turn one emoji into twelve characters (``\\ud83d\\ude00``) that a cut can
split in the middle. So the board stores JSON as text (``ensure_ascii=False``)
and clips by extended grapheme clusters (``regex``'s ``\\X``, Unicode's own
segmentation rules), never inside one.
"""

from __future__ import annotations

import json
from typing import Any

import regex

ELLIPSIS = "\u2026"
_GRAPHEME = regex.compile(r"\X")


def graphemes(text: str, most: int | None = None) -> list[str]:
    """The user-perceived characters of ``text`` (the first ``most`` of them when given)."""
    if most is None:
        return _GRAPHEME.findall(text)
    found: list[str] = []
    for match in _GRAPHEME.finditer(text):
        if len(found) >= most:
            break
        found.append(match.group())
    return found


def grapheme_count(text: str) -> int:
    return sum(1 for _ in _GRAPHEME.finditer(text))


def clip(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` characters (an ellipsis included), and whether it was cut."""
    if len(text) <= limit:
        # Never more graphemes than code points: it fits.
        return text, False
    head = graphemes(text, limit + 1)
    if len(head) <= limit:
        return text, False
    return "".join(head[: max(0, limit - 1)]) + ELLIPSIS, True


def clip_text(value: object, limit: int) -> str | None:
    """Text cut to ``limit`` characters with an ellipsis (``None`` for anything but text)."""
    if not isinstance(value, str):
        return None
    return clip(value, limit)[0]


def json_text(value: Any) -> str:
    """Compact JSON with text as text (no ASCII escapes)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def clip_payload(payload: dict[str, Any], limit: int) -> dict[str, Any]:
    """``payload`` itself when its JSON is at most ``limit`` characters, else a marker.

    The marker is ``{"clipped": true, "preview": <the start of its JSON>, "size": <its
    length in characters>}``; a payload that is such a marker already (read back from
    the store) is kept as it is.
    """
    if payload.get("clipped") is True and set(payload) == {"clipped", "preview", "size"}:
        return payload
    text = json_text(payload)
    if len(text) <= limit:
        return payload
    size = grapheme_count(text)
    if size <= limit:
        return payload
    return {"clipped": True, "preview": "".join(graphemes(text, limit)), "size": size}


def clip_strings(value: Any, limit: int) -> tuple[Any, bool]:
    """``value`` (JSON: objects, lists, text) with every text in it clipped to ``limit``; and whether any was."""
    if isinstance(value, str):
        return clip(value, limit)
    if isinstance(value, dict):
        clipped_any = False
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[key], clipped = clip_strings(item, limit)
            clipped_any = clipped_any or clipped
        return out, clipped_any
    if isinstance(value, list):
        items = [clip_strings(item, limit) for item in value]
        return [item for item, _ in items], any(clipped for _, clipped in items)
    return value, False
