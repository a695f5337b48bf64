"""Typed readers for configuration from the environment.

Each helper either returns a value of the right type or raises
``ConfigurationError`` with one sentence saying which variable is wrong and what
to put there instead. Settings call these at import time, so a bad value stops
start-up before anything runs.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigurationError(Exception):
    """A configuration value is missing or malformed; the message says how to fix it."""


def _raw(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    value = env.get(name)
    file_name = env.get(f"{name}_FILE")
    if value is None and file_name:
        try:
            value = Path(file_name).read_text().strip()
        except OSError as exc:
            raise ConfigurationError(
                f"{name}_FILE points at {file_name!r}, which cannot be read ({exc.strerror}); "
                f"fix the path or set {name} directly."
            ) from None
    return value


def envstr(name: str, default: str = "", environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None else value


def envbool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name} is {value!r}; set it to true or false.")


def envint(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigurationError(f"{name} is {value!r}; set it to a whole number.") from None
    if minimum is not None and number < minimum:
        raise ConfigurationError(f"{name} is {number}; set it to {minimum} or more.")
    if maximum is not None and number > maximum:
        raise ConfigurationError(f"{name} is {number}; set it to {maximum} or less.")
    return number


def envfloat(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    value = _raw(name, environ)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value.strip())
    except ValueError:
        raise ConfigurationError(f"{name} is {value!r}; set it to a number.") from None
    if minimum is not None and number < minimum:
        raise ConfigurationError(f"{name} is {number}; set it to {minimum} or more.")
    return number


def envlist(name: str, default: str = "", environ: Mapping[str, str] | None = None) -> list[str]:
    return [item.strip() for item in envstr(name, default, environ).split(",") if item.strip()]


def envnetworks(
    name: str, default: str = "", environ: Mapping[str, str] | None = None
) -> tuple[IpNetwork, ...]:
    """A comma-separated list of IP addresses or networks (``10.0.0.5,172.16.0.0/12``)."""
    networks: list[IpNetwork] = []
    for entry in envlist(name, default, environ):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigurationError(
                f"{name} holds {entry!r}, which is not an IP address or network; "
                "list addresses or networks separated by commas, e.g. 10.0.0.5,172.16.0.0/12."
            ) from None
    return tuple(networks)


def envchoice(
    name: str, default: str, choices: tuple[str, ...], environ: Mapping[str, str] | None = None
) -> str:
    """One of ``choices`` (compared without case; returned as spelled in ``choices``)."""
    value = envstr(name, "", environ).strip()
    if not value:
        return default
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise ConfigurationError(f"{name} is {value!r}; set it to one of {', '.join(choices)}.")
