"""Notification destinations: Apprise URLs, checked without ever repeating their secrets.

An Apprise URL carries its secret (a webhook token, a mail password) in the URL
itself, so no sentence about one may quote it: errors name the entry by its
position and its scheme only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from dashboard.env import ConfigurationError, envstr

if TYPE_CHECKING:
    from apprise.plugins.base import NotifyBase

Dialect = Literal["slack", "markdown", "text"]

# How each service renders what it is sent, which decides how upstream text is
# made inert (dashboard/notify/neutralise.py). Services not listed render Markdown
# (most chats do), so their text is escaped as Markdown: at worst a stray backslash.
_TEXT_SCHEMES = frozenset(
    {"json", "jsons", "form", "forms", "xml", "xmls", "mailto", "mailtos", "ntfy", "ntfys", "syslog"}
)
_SLACK_SCHEMES = frozenset({"slack", "https+slack"})
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]{0,30})://", re.IGNORECASE)


class DestinationInvalid(ValueError):
    """A notification URL Apprise cannot use; ``str()`` is one sentence without the URL's secrets."""


@dataclass(frozen=True)
class Destination:
    """A checked destination URL and what kind of service it is."""

    url: str
    kind: str

    @property
    def dialect(self) -> Dialect:
        return dialect_for(self.kind)

    def __repr__(self) -> str:
        return f"Destination(kind={self.kind!r}, url=<hidden>)"


def dialect_for(kind: str) -> Dialect:
    if kind in _SLACK_SCHEMES:
        return "slack"
    if kind in _TEXT_SCHEMES:
        return "text"
    return "markdown"


def scheme_of(url: str) -> str | None:
    match = _SCHEME.match(url.strip())
    return match.group(1).lower() if match else None


def apprise_plugin(url: str) -> NotifyBase | None:
    """Apprise's object for ``url`` (or ``None``), its own complaints kept out of the logs (they quote the URL).

    Messages come from "Mogplex board" (the name chats show and Slack's footer), without
    Apprise's icon: a message holds no address but the board's, Mogplex's and a PR's.
    """
    import apprise

    asset = apprise.AppriseAsset(app_id="Mogplex board", app_desc="Mogplex status board")
    with apprise.LogCapture(level=logging.CRITICAL):  # type: ignore[no-untyped-call]
        plugin = apprise.Apprise.instantiate(url, asset=asset, suppress_exceptions=True)
    if not plugin:
        return None
    for flag in ("include_image", "avatar"):  # Discord's avatar is its own switch
        if hasattr(plugin, flag):
            setattr(plugin, flag, False)
    return plugin


def destination_check(url: str, *, label: str) -> Destination:
    """The destination for an Apprise URL, or ``DestinationInvalid`` naming ``label`` and the scheme only."""
    url = url.strip()
    scheme = scheme_of(url)
    if scheme is None:
        raise DestinationInvalid(
            f"{label} is not a notification URL (it has no scheme such as slack:// or mailto://); "
            "write it as an Apprise URL, see https://github.com/caronc/apprise/wiki."
        )
    if apprise_plugin(url) is None:
        raise DestinationInvalid(
            f"{label} ({scheme}://…) is not a URL Apprise can send to: the scheme is unknown or a part "
            f"is missing; check it against Apprise's page for {scheme}:// at https://github.com/caronc/apprise/wiki."
        )
    return Destination(url=url, kind=scheme)


def notify_urls_from_env(environ: Mapping[str, str] | None = None) -> list[Destination]:
    """BOARD_NOTIFY_URLS (or BOARD_NOTIFY_URLS_FILE): Apprise URLs separated by spaces or new lines.

    Raises ``ConfigurationError`` naming the first bad entry by its position and scheme.
    """
    raw = envstr("BOARD_NOTIFY_URLS", "", environ)
    destinations = []
    for index, url in enumerate(raw.split(), start=1):
        try:
            destinations.append(destination_check(url, label=f"BOARD_NOTIFY_URLS entry {index}"))
        except DestinationInvalid as exc:
            raise ConfigurationError(str(exc)) from None
    return destinations


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that may be secret (every path segment, user, password, query value)."""
    parts = urlsplit(url)
    pieces = [parts.username or "", parts.password or "", *parts.path.split("/")]
    pieces += [value for pair in parts.query.split("&") for value in pair.split("=")[1:]]
    pieces += [parts.netloc, url]
    return sorted({p for p in pieces if len(p) >= 4}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` with every possibly secret part of ``url`` taken out."""
    for secret in url_secrets(url):
        text = text.replace(secret, "…")
    return text


def url_display(url: str) -> str:
    """What a page may show of a destination URL: its scheme."""
    scheme = scheme_of(url)
    return f"{scheme}://…" if scheme else "(not a URL)"
