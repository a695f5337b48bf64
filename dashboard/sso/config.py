"""Single sign-on settings from the environment, and who they let in (no Django imports: settings read this)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dashboard.env import ConfigurationError, envlist, envstr

PROVIDER_ID = "sso"


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    secret: str
    name: str
    allowed_domains: tuple[str, ...]
    allowed_groups: tuple[str, ...]
    groups_claim: str

    def allauth_providers(self) -> dict[str, Any]:
        """``SOCIALACCOUNT_PROVIDERS`` for allauth: one OpenID Connect app, from the environment."""
        scopes = ["openid", "email", "profile"]
        return {
            "openid_connect": {
                "OAUTH_PKCE_ENABLED": True,
                "SCOPE": scopes,
                "APPS": [
                    {
                        "provider_id": PROVIDER_ID,
                        "name": self.name,
                        "client_id": self.client_id,
                        "secret": self.secret,
                        "settings": {"server_url": self.issuer, "fetch_userinfo": True},
                    }
                ],
            }
        }


def oidc_from_env(environ: Mapping[str, str] | None = None) -> OidcConfig | None:
    """The SSO configuration, or None when ``BOARD_OIDC_ISSUER`` is unset; a bad one raises with a sentence."""
    issuer = envstr("BOARD_OIDC_ISSUER", "", environ).strip().rstrip("/")
    if not issuer:
        return None
    if not issuer.startswith(("https://", "http://")):
        raise ConfigurationError(
            f"BOARD_OIDC_ISSUER is {issuer!r}; set it to the provider's issuer URL (https://...)."
        )
    client_id = envstr("BOARD_OIDC_CLIENT_ID", "", environ).strip()
    secret = envstr("BOARD_OIDC_CLIENT_SECRET", "", environ).strip()
    if not client_id or not secret:
        raise ConfigurationError(
            "BOARD_OIDC_ISSUER is set but BOARD_OIDC_CLIENT_ID or BOARD_OIDC_CLIENT_SECRET is not; "
            "set both (the secret may come from BOARD_OIDC_CLIENT_SECRET_FILE)."
        )
    domains = tuple(d.lower().lstrip("@") for d in envlist("BOARD_OIDC_ALLOWED_DOMAINS", "", environ))
    groups = tuple(envlist("BOARD_OIDC_ALLOWED_GROUPS", "", environ))
    if not domains and not groups:
        raise ConfigurationError(
            "BOARD_OIDC_ISSUER is set but neither BOARD_OIDC_ALLOWED_DOMAINS nor BOARD_OIDC_ALLOWED_GROUPS is, "
            "so anyone with an account at the provider could sign in; set one of them."
        )
    return OidcConfig(
        issuer=issuer,
        client_id=client_id,
        secret=secret,
        name=envstr("BOARD_OIDC_NAME", "single sign-on", environ).strip() or "single sign-on",
        allowed_domains=domains,
        allowed_groups=groups,
        groups_claim=envstr("BOARD_OIDC_GROUPS_CLAIM", "groups", environ).strip() or "groups",
    )


def sso_refusal(claims: Mapping[str, Any], config: OidcConfig) -> str | None:
    """Why the person these claims describe may not sign in, in one sentence; None when they may."""
    email = str(claims.get("email") or "").strip()
    verified = claims.get("email_verified", True) is not False
    domain = email.rpartition("@")[2].lower() if "@" in email else ""
    if config.allowed_domains and domain and verified and domain in config.allowed_domains:
        return None
    raw_groups = claims.get(config.groups_claim)
    groups = {str(g) for g in raw_groups} if isinstance(raw_groups, list) else set()
    if config.allowed_groups and groups & set(config.allowed_groups):
        return None
    if config.allowed_domains and email and not verified:
        return (
            f"{config.name} has not verified the email address {email}; verify it there, "
            "or sign in with a board account."
        )
    who = email or "your account"
    allowed = []
    if config.allowed_domains:
        allowed.append("an email address at " + ", ".join(config.allowed_domains))
    if config.allowed_groups:
        allowed.append("membership of " + ", ".join(config.allowed_groups))
    return (
        f"{who} may not sign in to this board ({' or '.join(allowed)} is needed); "
        "ask an operator to allow it, or sign in with a board account."
    )
