"""Why a run failed, in one plain phrase, from the codes Mogplex puts on its terminal event.

A harness run that fails ends with a ``failed`` event whose payload is
``{exit_code, failure_code}`` (``lib/harness/failure.ts``); the run's ``error``
carries Mogplex's own sentence for the same code. The board shows the phrase
here and that sentence beside it. A code Mogplex adds later is shown as it is.
"""

from __future__ import annotations

FAILURE_CODES: tuple[str, ...] = ("model_access_denied", "rate_limited", "command_failed")

_REASONS = {
    "model_access_denied": "model not available to this account",
    "rate_limited": "the model provider rate-limited the run",
}


def failure_reason(failure_code: str | None, exit_code: int | None) -> str | None:
    """The plain reason for a failure code (``None`` when there is no code).

    ``command_failed`` names the exit code when there is one; an unknown code is
    returned unchanged, so nothing upstream says is hidden.
    """
    if failure_code is None:
        return None
    if failure_code == "command_failed":
        return "the agent command failed" if exit_code is None else f"the agent exited with code {exit_code}"
    return _REASONS.get(failure_code, failure_code)
