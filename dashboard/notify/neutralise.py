"""Upstream text made inert for each chat format, so an agent's words cannot ping or spoof.

Agents write run errors, branch names and event messages. In a chat message
they must stay words: no ``@here``/``@everyone``/``<!channel>`` ping, no link
whose text hides its target (``<https://evil|click>``, ``[click](https://evil)``),
no formatting that rewrites the message. Each function takes one upstream value
and returns text for one dialect:

- ``text``: plain text services (JSON webhooks, mail, ntfy). Only mentions are broken.
- ``markdown`` (Discord, Mattermost, Teams, Google Chat...): every CommonMark
  punctuation character is backslash-escaped, so it renders literally.
- ``slack``: sent as plain text (``mrkdwn: false``), which Apprise escapes the
  Slack way (``&lt;`` for ``<``), so no ``<!channel>`` or ``<url|label>`` survives
  and ``*bold*`` stays asterisks. Slack has no backslash escapes, so the Markdown
  form would show its backslashes.

Written here rather than taken from a library: Apprise converts formats but
passes a declared body's text through, and the chat-escaping libraries cover one
service each.
"""

from __future__ import annotations

import re
import unicodedata

from dashboard.notify.destinations import Dialect

# A zero-width space after "@" (what discord.py's escape_mentions does) keeps the
# word readable and stops every service from seeing a mention.
_MENTION = re.compile(r"@")
_ZWSP = "\u200b"
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&=:\"'$%^?;,/])")
# Bidi overrides and isolates could reorder the message around the text.
_BIDI = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"))


def one_line(value: object, limit: int = 300) -> str:
    """Upstream text as one line: control and bidi characters dropped, whitespace collapsed, clipped."""
    text = "" if value is None else str(value)
    text = text.translate(_BIDI)
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def neutralise(value: object, dialect: Dialect, *, limit: int = 300) -> str:
    """One upstream value as inert text in ``dialect`` (see the module docstring)."""
    text = one_line(value, limit)
    text = _MENTION.sub("@" + _ZWSP, text)
    if dialect in ("text", "slack"):
        # A plain-text receiver may forward into Slack: break its control sequences too.
        return text.replace("<", "<" + _ZWSP)
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)
