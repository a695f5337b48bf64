"""Signing in, with failed attempts rate limited per client address and per username.

Django's ``LoginView`` with one check in front: before the password is looked
at, the attempt is refused with 429 and one sentence ("Too many sign-in
attempts; wait N seconds and try again.") when the client's address or the
username has had ``BOARD_LOGIN_ATTEMPTS_PER_MINUTE`` failed attempts in the last
``BOARD_LOGIN_WINDOW_SECONDS``. Only failures count, so a person who types
their password right is never slowed down by their own successes.

The counts are moving windows in Redis (the ``limits`` library, as for the
upstream budget), so they hold across every web process. When Redis cannot be
reached the check lets the attempt through and logs one line: the operator must
always be able to sign in, and the password check itself does not need Redis.

The client's address is ``REMOTE_ADDR``, unless it is one of
``BOARD_TRUSTED_PROXIES``; then it is the nearest address in
``X-Forwarded-For`` that is not a trusted proxy.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
from functools import cache
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from dashboard.env import IpNetwork
from dashboard.sso.flow import sso_name

logger = logging.getLogger(__name__)

LIMITS_PREFIX = "signin"
# A sign-in page must not hang on an unreachable Redis: give up quickly and let the attempt through.
REDIS_TIMEOUT_SECONDS = 0.5


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_address(request: HttpRequest) -> str:
    """The address the attempt came from (see the module docstring for proxies)."""
    remote = str(request.META.get("REMOTE_ADDR") or "")
    trusted: tuple[IpNetwork, ...] = settings.BOARD_TRUSTED_PROXIES
    peer = _address(remote)
    if peer is None or not any(peer in net for net in trusted):
        return remote or "unknown"
    # Each trusted proxy appends the address it saw; the first untrusted one from the right
    # is the client. Anything left of it was written by the client and is not believed.
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR") or "")
    for hop in reversed([h for h in forwarded.split(",") if h.strip()]):
        address = _address(hop)
        if address is None:
            return remote
        if not any(address in net for net in trusted):
            return str(address)
    return remote


@cache
def _limiter_for(url: str) -> MovingWindowRateLimiter:
    storage = RedisStorage(
        url,
        key_prefix=LIMITS_PREFIX,
        wrap_exceptions=True,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )
    return MovingWindowRateLimiter(storage)


def _item() -> RateLimitItem:
    return cast(
        RateLimitItem,
        RateLimitItemPerSecond(settings.BOARD_LOGIN_ATTEMPTS_PER_MINUTE, settings.BOARD_LOGIN_WINDOW_SECONDS),
    )


def _keys(request: HttpRequest, username: str) -> list[tuple[str, str]]:
    # The username is hashed: it is whatever was typed (perhaps a password, perhaps 100 kB).
    name = hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]
    return [("address", client_address(request)), ("username", name)]


def signin_wait(request: HttpRequest, username: str) -> int | None:
    """Seconds to wait before another attempt for this address or username, or None to go ahead."""
    limiter, item = _limiter_for(settings.REDIS_URL), _item()
    try:
        resets = [
            limiter.get_window_stats(item, *key).reset_time
            for key in _keys(request, username)
            if not limiter.test(item, *key)
        ]
    except StorageError as exc:
        logger.warning(
            "sign-in attempts cannot be counted (%s): Redis is unreachable, letting the attempt through",
            type(exc.storage_error).__name__,
        )
        return None
    if not resets:
        return None
    return max(1, math.ceil(max(resets) - time.time()))


def signin_failed(request: HttpRequest, username: str) -> None:
    """Count one failed attempt for the address and the username."""
    limiter, item = _limiter_for(settings.REDIS_URL), _item()
    try:
        for key in _keys(request, username):
            limiter.hit(item, *key)
    except StorageError as exc:
        logger.warning("a failed sign-in could not be counted (%s)", type(exc.storage_error).__name__)


def too_many_sentence(seconds: int) -> str:
    return f"Too many sign-in attempts; wait {seconds} second{'s' if seconds != 1 else ''} and try again."


class SignInView(LoginView):
    """Django's login view, refusing attempts over the limit before any password is checked."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        wait = signin_wait(request, str(request.POST.get("username", "")))
        if wait is not None:
            logger.warning("sign-in refused: too many failed attempts from %s", client_address(request))
            context = self.get_context_data(
                form=AuthenticationForm(request), too_many=too_many_sentence(wait)
            )
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context["sso_name"] = sso_name()
        return context

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        signin_failed(self.request, str(form.data.get("username", "")))
        return super().form_invalid(form)
