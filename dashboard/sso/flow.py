"""Single sign-on with OpenID Connect, through django-allauth's ``openid_connect`` provider.

Off unless ``BOARD_OIDC_ISSUER`` is set; local accounts keep working either way and
the sign-in page stays the board's own (rate limited, see ``dashboard.signin``).
Who may come in is decided here, on every SSO sign-in (new and returning people
alike): a verified email address in ``BOARD_OIDC_ALLOWED_DOMAINS``, or a group in
``BOARD_OIDC_ALLOWED_GROUPS`` (the ``groups`` claim). A refusal, or a provider that
cannot be reached, is the sign-in page again with one sentence, its local form
still there.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialLogin
from allauth.socialaccount.providers.openid_connect import views as oidc_views
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_POST

from dashboard.sso.config import OidcConfig, sso_refusal

logger = logging.getLogger("dashboard.sso")


def signin_page(request: HttpRequest, sentence: str, status: int) -> HttpResponse:
    """The board's sign-in page with ``sentence`` above its local form."""
    context = {
        "form": AuthenticationForm(request),
        "sso_problem": sentence,
        "sso_name": sso_name(),
        "next": "",
    }
    response = TemplateResponse(request, "registration/login.html", context, status=status)
    return response.render()


def _claims(sociallogin: SocialLogin) -> dict[str, Any]:
    data = sociallogin.account.extra_data
    if not isinstance(data, dict):
        return {}
    merged: dict[str, Any] = {}
    for part in ("id_token", "userinfo"):
        if isinstance(data.get(part), dict):
            merged.update(data[part])
    return merged or data


class BoardAccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]
    """Local accounts are made by operators (admin, ``createsuperuser``); nobody signs up."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False


class BoardSocialAccountAdapter(DefaultSocialAccountAdapter):  # type: ignore[misc]
    """The allow-list on every SSO sign-in; errors as a sentence on the board's sign-in page."""

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        config: OidcConfig | None = settings.BOARD_OIDC
        if config is None:
            raise ImmediateHttpResponse(
                signin_page(request, "Single sign-on is not set up on this board.", 403)
            )
        refusal = sso_refusal(_claims(sociallogin), config)
        if refusal is not None:
            logger.warning("sso sign-in refused uid=%s", sociallogin.account.uid)
            raise ImmediateHttpResponse(signin_page(request, refusal, 403))

    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        # pre_social_login has let this person in: their first sign-in makes their account.
        return True

    def on_authentication_error(
        self,
        request: HttpRequest,
        provider: Any,
        error: Any = None,
        exception: Exception | None = None,
        extra_context: Any = None,
    ) -> None:
        name = _provider_name()
        if isinstance(exception, requests.RequestException):
            logger.warning("sso provider unreachable at callback error=%s", type(exception).__name__)
            raise ImmediateHttpResponse(signin_page(request, _unreachable(name), 503))
        logger.warning("sso sign-in failed error=%s", error or type(exception).__name__)
        raise ImmediateHttpResponse(
            signin_page(
                request,
                f"Signing in with {name} did not complete; try again, or sign in with a board account.",
                400,
            )
        )


def sso_name() -> str | None:
    """The provider's name for the sign-in page's button, or None when single sign-on is off."""
    config: OidcConfig | None = settings.BOARD_OIDC
    return config.name if config else None


def _provider_name() -> str:
    return sso_name() or "single sign-on"


def _unreachable(name: str) -> str:
    return (
        f"{name} cannot be reached right now; try again in a minute, or sign in with a board account below."
    )


@require_POST
def sso_login(request: HttpRequest, provider_id: str) -> HttpResponse:
    """Start an SSO sign-in (a POST from the sign-in page): allauth's view, with a provider that is down said plainly."""
    if settings.BOARD_OIDC is None:
        return signin_page(request, "Single sign-on is not set up on this board.", 404)
    try:
        response: HttpResponse = oidc_views.login(request, provider_id)
    except requests.RequestException as exc:
        logger.warning("sso provider unreachable error=%s", type(exc).__name__)
        return signin_page(request, _unreachable(_provider_name()), 503)
    return response


def account_inactive(request: HttpRequest) -> HttpResponse:
    """Where allauth sends a person whose account an operator switched off."""
    return signin_page(request, "This account is switched off; ask an operator to switch it on again.", 403)
