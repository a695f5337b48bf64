"""How a Mogplex request can fail, one class per thing an operator would do about it.

Every failure the client raises is a ``MogplexError`` whose ``kind`` is a short
stable string (stored in snapshots, counted in metrics) and whose ``str()`` is one
sentence saying what went wrong and what to do. No message ever contains a token:
the client builds them from the source name, the endpoint template, the HTTP
status and upstream's own error message, never from the request.
"""

from __future__ import annotations

from typing import ClassVar


class MogplexError(Exception):
    """A request to Mogplex failed; ``kind`` says how, ``status`` is the HTTP status if one came back."""

    kind: ClassVar[str] = "error"
    default_message: ClassVar[str] = "The request to Mogplex failed."

    def __init__(
        self, message: str | None = None, *, status: int | None = None, board_message: str | None = None
    ) -> None:
        self.message = message or self.default_message
        self.status = status
        # For the source's row, when the client knows more than its kind's general sentence
        # (where a redirect points, what an error sent with 200 said); never a token or a query.
        self.board_message = board_message
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"


class Unauthorized(MogplexError):
    """401: the token is missing, invalid, expired or revoked (or upstream's token lookup failed)."""

    kind = "unauthorized"
    default_message = (
        "Mogplex rejected the token (401); fix the token: it is missing, invalid, expired or revoked."
    )


class Forbidden(MogplexError):
    """403: the token works but lacks a scope; upstream's message names the scope."""

    kind = "forbidden"
    default_message = "Mogplex refused the request for a missing scope (403); add the scope to the token."


class NotFound(MogplexError):
    """404: the thing does not exist, or belongs to another user (upstream makes them look the same)."""

    kind = "not_found"
    default_message = (
        "Mogplex does not know this id for this token (404); check the id and which account owns it."
    )


class RateLimited(MogplexError):
    """429: the token's 60-per-minute budget is spent; send nothing on it for ``retry_after`` seconds."""

    kind = "rate_limited"
    default_message = "Mogplex rate-limited the token (429); respect the rate limit and wait before retrying."

    def __init__(
        self, message: str | None = None, *, retry_after: float = 60.0, status: int | None = 429
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"RateLimited({self.message!r}, status={self.status!r}, retry_after={self.retry_after!r})"


class Unavailable(MogplexError):
    """5xx, or no connection at all; ``status`` is None when nothing answered."""

    kind = "unavailable"
    default_message = "Mogplex is unavailable; check the base URL and try again later."


class UpstreamTimeout(MogplexError):
    """Connecting or reading took longer than the client's timeout."""

    kind = "timeout"
    default_message = "Mogplex did not answer in time; check the base URL and the network, then try again."


class ProtocolError(MogplexError):
    """The answer was not what the contract promises: not JSON, no boolean ``ok``, or the wrong shape."""

    kind = "protocol"
    default_message = (
        "Mogplex answered with something that is not the v1 API; check the base URL points at Mogplex."
    )


class RecordShapeError(ProtocolError):
    """One record in an answer has the wrong shape; ``problem`` says how, after "Mogplex sent it".

    Raised by the record parsers. Inside a list (sandboxes, a run's events) only that
    record is unreadable and the parser keeps the others; see ``dashboard.mogplex.models``.
    """

    def __init__(self, message: str, *, problem: str) -> None:
        super().__init__(message)
        self.problem = problem


class RedirectRefused(MogplexError):
    """A 3xx: the base URL is not the canonical address (following it would drop the token)."""

    kind = "redirect"
    default_message = "Mogplex answered with a redirect; set MOGPLEX_BASE_URL to the address it redirects to."

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        location: str | None = None,
        board_message: str | None = None,
    ) -> None:
        super().__init__(message, status=status, board_message=board_message)
        self.location = location


class BadRequest(MogplexError):
    """400 (or another 4xx the contract does not expect on a read): the board sent something wrong."""

    kind = "bad_request"
    default_message = "Mogplex rejected the request as malformed (400); this is a bug in the board."


class InvalidId(ValueError):
    """An id that is not a UUID; raised before anything is sent (upstream answers 500 to one)."""


ERROR_CLASSES: tuple[type[MogplexError], ...] = (
    Unauthorized,
    Forbidden,
    NotFound,
    RateLimited,
    Unavailable,
    UpstreamTimeout,
    ProtocolError,
    RedirectRefused,
    BadRequest,
)
ERROR_KINDS: tuple[str, ...] = tuple(cls.kind for cls in ERROR_CLASSES)
