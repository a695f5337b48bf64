"""Where Mogplex is and which tokens the board reads it with.

The contract (section 1) allows the base URL as an origin or as origin +
``/api/v1/mogplex``; both normalise to an *origin base*. Tokens are wrapped in
``Token`` so that no ``repr``, log line or exception text can show them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from dashboard.env import ConfigurationError, envbool, envstr

API_PREFIX = "/api/v1/mogplex"
DEFAULT_ORIGIN = "https://mogplex.com"
SOURCE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class Token:
    """A bearer token that never shows itself.

    ``str()``, ``repr()`` and f-strings give a fixed placeholder; only
    ``reveal()`` returns the characters, and only the client calls it, to build
    the ``Authorization`` header.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        # The server hashes the exact characters after "Bearer ", so stray
        # whitespace from a pasted token would make a valid token fail.
        self._value = value.strip()

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Token('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Token) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a Mogplex token cannot be pickled or sent to a task; pass the source name")


@dataclass(frozen=True)
class Source:
    """One Mogplex account the board reads with: a name people see, and its token."""

    name: str
    token: Token = field(repr=False)


def normalize_base_url(raw: str, variable: str = "MOGPLEX_BASE_URL") -> str:
    """Return the origin base for ``raw`` (an origin, or origin + ``/api/v1/mogplex``).

    Raises ``ConfigurationError`` naming ``variable`` when the value cannot be a base URL.
    """
    value = raw.strip()
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigurationError(
            f"{variable} is {value!r}; set it to an http(s) URL such as https://mogplex.com."
        )
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ConfigurationError(f"{variable} is {value!r}; remove the query string or fragment from it.")
    if parts.username or parts.password:
        raise ConfigurationError(
            f"{variable} contains credentials; remove them and set MOGPLEX_TOKEN instead."
        )
    path = parts.path.rstrip("/")
    if path.endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)]
    return f"{parts.scheme}://{parts.netloc}{path}"


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a URL's hostname) names this machine: ``localhost`` or a loopback address."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def base_url_from_env(environ: Mapping[str, str], default: str = DEFAULT_ORIGIN) -> str:
    """``MOGPLEX_BASE_URL`` (either form) wins over ``MOGPLEX_URL``, as the CLI does.

    Plain http is refused for any host but this machine's (the token would cross the
    network in clear text), unless ``MOGPLEX_ALLOW_PLAIN_HTTP`` is true: the CLI's
    ``MOGPLEX_DEV`` makes the same exception for loopback only.
    """
    for variable in ("MOGPLEX_BASE_URL", "MOGPLEX_URL"):
        value = envstr(variable, "", environ)
        if value.strip():
            base = normalize_base_url(value, variable)
            _refuse_plain_http(base, variable, environ)
            return base
    return normalize_base_url(default)


def _refuse_plain_http(base: str, variable: str, environ: Mapping[str, str]) -> None:
    parts = urlsplit(base)
    if parts.scheme != "http" or is_loopback_host(parts.hostname or ""):
        return
    if envbool("MOGPLEX_ALLOW_PLAIN_HTTP", False, environ):
        return
    raise ConfigurationError(
        f"{variable} is {base!r}, plain http to another machine, so the token would travel in clear "
        "text; use https, or set MOGPLEX_ALLOW_PLAIN_HTTP=true if the network between is trusted "
        "(plain http is allowed without it only for localhost and loopback addresses)."
    )


def sources_from_env(environ: Mapping[str, str]) -> list[Source]:
    """Read the board's sources.

    ``MOGPLEX_API_KEY`` wins over ``MOGPLEX_TOKEN`` (as in the CLI) and makes a
    source named ``default``. ``MOGPLEX_TOKEN_<NAME>`` adds a source per team
    member, named ``<name>`` in lower case. Every variable also has a ``_FILE``
    form. An empty list means nothing is configured.
    """
    sources: dict[str, Source] = {}
    for variable in ("MOGPLEX_API_KEY", "MOGPLEX_TOKEN"):
        if variable in environ or f"{variable}_FILE" in environ:
            sources["default"] = Source("default", _token(variable, environ))
            break
    for variable in sorted(environ):
        base = variable.removesuffix("_FILE")
        if not base.startswith("MOGPLEX_TOKEN_") or base in {"MOGPLEX_TOKEN_FILE"}:
            continue
        name = base.removeprefix("MOGPLEX_TOKEN_").lower()
        if not SOURCE_NAME_RE.match(name):
            raise ConfigurationError(
                f"{base} names a source {name!r}; use letters, digits, - or _ after MOGPLEX_TOKEN_."
            )
        if name in sources and name != "default":
            continue
        if name == "default" and "default" in sources:
            raise ConfigurationError(
                f"{base} and MOGPLEX_TOKEN both define the source 'default'; keep one of them."
            )
        sources[name] = Source(name, _token(base, environ))
    return list(sources.values())


def _token(variable: str, environ: Mapping[str, str]) -> Token:
    token = Token(envstr(variable, "", environ))
    if not token.reveal():
        raise ConfigurationError(f"{variable} is empty; set it to a Mogplex token (mog_...) or unset it.")
    if any(ch.isspace() for ch in token.reveal()):
        raise ConfigurationError(f"{variable} contains whitespace inside the token; paste the token again.")
    return token
