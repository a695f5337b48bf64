"""The configured sources, by name: tasks carry names, and only this module turns one into a client."""

from __future__ import annotations

from django.conf import settings

from dashboard.mogplex.client import MogplexClient
from dashboard.mogplex.config import Source


class UnknownSource(LookupError):
    """A task named a source that is not configured (any more)."""


def source_names() -> list[str]:
    """Names of the configured sources, in configuration order."""
    return [source.name for source in settings.MOGPLEX_TOKENS]


def source_get(name: str) -> Source:
    for source in settings.MOGPLEX_TOKENS:
        if source.name == name:
            return source
    raise UnknownSource(f"no Mogplex source named {name!r} is configured")


def source_client(name: str) -> MogplexClient:
    """A read-only client for the source called ``name``, with the configured timeouts."""
    return MogplexClient(
        settings.MOGPLEX_BASE_URL,
        source_get(name),
        connect_timeout=settings.MOGPLEX_CONNECT_TIMEOUT,
        read_timeout=settings.MOGPLEX_READ_TIMEOUT,
    )
