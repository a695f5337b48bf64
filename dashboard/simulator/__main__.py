"""``python -m dashboard.simulator``: serve the simulated Mogplex API (see docs/internals.md)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import uvicorn

from dashboard.demo import demo_secrets
from dashboard.simulator.app import create_app
from dashboard.simulator.state import SimulatorState

REPO_DIR = Path(__file__).resolve().parent.parent.parent
DEFAULT_INGEST_URL = "http://127.0.0.1:8000/ingest/runs"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dashboard.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SIMULATOR_PORT") or 8765))
    parser.add_argument("--window-seconds", type=float, default=60.0, help="rate window per PAT (default 60)")
    parser.add_argument("--limit", type=int, default=60, help="requests per window per PAT (default 60)")
    parser.add_argument(
        "--scenario",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the seeded team-at-work scenario (default on; tests pass --no-scenario)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed for repos, agents and the scenario")
    parser.add_argument("--speed", type=float, default=1.0, help="scenario speed-up factor (default 1)")
    parser.add_argument("--ingest-url", default=DEFAULT_INGEST_URL, help="where the scenario registers runs")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.window_seconds <= 0 or args.limit < 1 or args.speed <= 0:
        raise SystemExit("--window-seconds and --speed must be positive and --limit at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s simulator %(levelname)s %(message)s")
    # httpx logs every request at INFO; the scenario's calls to itself are not news.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    var_dir = Path(os.environ.get("BOARD_VAR_DIR") or REPO_DIR / "var")
    secrets = demo_secrets(var_dir)
    state = SimulatorState(seed=args.seed, window_seconds=args.window_seconds, limit=args.limit)
    for name, token in secrets.sources():
        state.register_token(name, token, ["read"], user=name)
    state.register_token("ci", secrets.write_token, ["read", "write"], user="demo")
    background = None
    if args.scenario:
        from dashboard.simulator.scenario import Scenario

        host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
        background = Scenario(
            state,
            base_url=f"http://{host}:{args.port}",
            write_token=secrets.write_token,
            ingest_url=args.ingest_url,
            ingest_token=secrets.ingest_token,
            seed=args.seed,
            speed=args.speed,
        ).run
    logging.getLogger("dashboard.simulator").info(
        "serving on http://%s:%d (scenario %s)", args.host, args.port, "on" if args.scenario else "off"
    )
    uvicorn.run(
        create_app(state, background),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()
