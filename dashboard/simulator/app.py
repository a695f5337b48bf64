"""The Starlette application: the ``/_sim/`` control surface, and the Mogplex API for everything else."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.routing import Mount

from dashboard.simulator.api import MogplexApi
from dashboard.simulator.control_api import ControlSurface
from dashboard.simulator.state import SimulatorState


def create_app(state: SimulatorState, background: Callable[[], Awaitable[None]] | None = None) -> Starlette:
    """Serve ``state``; ``background()`` (the scenario) runs for as long as the server does."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.ensure_future(background()) if background is not None else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = Starlette(
        routes=[
            Mount("/_sim", routes=ControlSurface(state).routes()),
            Mount("", app=MogplexApi(state)),
        ],
        lifespan=lifespan,
    )
    app.state.simulator = state
    return app
