"""Faults switched on at run time, for one token name or for every request.

A fault hits requests outside ``/_sim/`` whose token name matches (or all of
them when the fault's ``token`` is ``None``). The oldest matching fault wins; a
fault with a ``count`` is removed once it has hit that many requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FAULT_KINDS = frozenset(
    {
        "429",
        "401",
        "403",
        "500",
        "502_html",
        "timeout",
        "malformed_json",
        "ok_false_200",
        "slow",
        "redirect",
        "malformed_cursor",
    }
)
DEFAULT_DELAYS = {"timeout": 30.0, "slow": 3.0}


@dataclass
class Fault:
    kind: str
    token: str | None = None
    remaining: int | None = None
    delay_seconds: float | None = None
    status: int | None = None
    location: str | None = None

    @property
    def delay(self) -> float:
        if self.delay_seconds is not None:
            return self.delay_seconds
        return DEFAULT_DELAYS.get(self.kind, 0.0)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "token": self.token,
            "count": self.remaining,
            "delay_seconds": self.delay_seconds,
            "status": self.status,
            "location": self.location,
        }


class FaultBook:
    """The faults in force, in the order they were switched on."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        if fault.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; use one of {sorted(FAULT_KINDS)}")
        if fault.remaining is not None and fault.remaining < 1:
            raise ValueError("count must be at least 1, or null for until cleared")
        self._faults.append(fault)

    def take(self, token_name: str | None) -> Fault | None:
        """The fault that hits a request made with ``token_name``, counting the hit."""
        for index, fault in enumerate(self._faults):
            if fault.token is not None and fault.token != token_name:
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self._faults[index]
            return fault
        return None

    def clear(self, token: str | None = None) -> None:
        """Switch off every fault, or only those switched on for token name ``token``."""
        if token is None:
            self._faults.clear()
        else:
            self._faults = [fault for fault in self._faults if fault.token != token]

    def as_json(self) -> list[dict[str, Any]]:
        return [fault.as_json() for fault in self._faults]
