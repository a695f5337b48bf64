"""gunicorn settings, read from the directory gunicorn starts in (the repository root; /app in the image).

The board is served by gunicorn's ``asgi`` worker (``dashboard.asgi``): the pages
as WSGI in a thread pool, the change stream natively (``dashboard.board.push``).

Display tokens are part of kiosk URLs, so the access log goes through a logger
that redacts them from the request line, path, query and referer. At the board's
default log level it leaves out the refresh polls that every open page sends every
few seconds (htmx requests answered 204 or 200), the change streams as they end and the
health probes that pass; ``BOARD_LOG_LEVEL=DEBUG`` writes them too, and
``BOARD_LOG_FORMAT=json`` makes gunicorn's lines JSON objects like the board's.

gunicorn 27 opens a control socket, by default one per user
(``$HOME/.gunicorn/gunicorn.ctl``): a second board on the same host would take it
over and delete it when it stops. Each board keeps its own under its ``var/``
(``BOARD_VAR_DIR``), or none when that path is too long for a Unix socket.
"""

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger
from pythonjsonlogger.json import JsonFormatter

from dashboard.env import envchoice, envstr
from dashboard.logredact import RedactDisplayTokens, redacted

LOG_LEVEL = envchoice("BOARD_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
LOG_FORMAT = envchoice("BOARD_LOG_FORMAT", "text", ("text", "json"))
# Probed every few seconds by compose, Kubernetes or `manage.py run`; a failing probe is still logged.
HEALTH_PATHS = ("/healthz", "/readyz")


class AccessLogger(Logger):  # type: ignore[misc]
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # gunicorn's own lines name request paths too (its default pre_request hook, at debug).
        self.error_log.addFilter(RedactDisplayTokens())
        if LOG_FORMAT == "json":
            error_format = JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
            for handler in self.error_log.handlers:
                handler.setFormatter(error_format)
            for handler in self.access_log.handlers:
                handler.setFormatter(logging.Formatter("%(message)s"))

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        return {
            key: redacted(value) for key, value in super().atoms(resp, req, environ, request_time).items()
        }

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if LOG_LEVEL != "DEBUG" and _routine(resp, environ):
            return
        if LOG_FORMAT != "json":
            super().access(resp, req, environ, request_time)
            return
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        self.access_log.info(
            json.dumps(
                {
                    "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "logger": "gunicorn.access",
                    "client": atoms.get("h"),
                    "request": atoms.get("r"),
                    "status": str(atoms.get("s")),
                    "bytes": atoms.get("b"),
                    "ms": round(float(atoms.get("M") or 0)),
                    "referer": atoms.get("f"),
                    "user_agent": atoms.get("a"),
                },
                ensure_ascii=False,
            )
        )


def _routine(resp: Any, environ: dict[str, Any]) -> bool:
    """An open page's refresh poll (htmx: 204 unchanged, 200 changed), or a passing health probe.

    These come every few seconds from every open page and every probe, and say nothing an
    operator acts on; page loads, posts, the API and every error are still logged.
    """
    status = _status(resp)
    if status == 204:
        return True
    if status != 200 or environ.get("REQUEST_METHOD") != "GET":
        return False
    return (
        environ.get("HTTP_HX_REQUEST") == "true"
        or environ.get("PATH_INFO") in HEALTH_PATHS
        # An open page's change stream, logged as it ends (every few minutes, by design).
        or str(environ.get("PATH_INFO", "")).endswith("/stream/")
    )


def _status(resp: Any) -> int | None:
    """The answer's status code, from the threaded worker's response or the asgi worker's."""
    status = getattr(resp, "status_code", None) or getattr(resp, "status", None)
    if isinstance(status, str):
        status = status.split(None, 1)[0]
    try:
        return int(status) if status is not None else None
    except ValueError:
        return None


def post_worker_init(worker: Any) -> None:
    """Under the asgi worker, a stop (SIGTERM) also ends the open change streams at once.

    Otherwise the worker would wait ``graceful_timeout`` for streams that never
    end by themselves; their pages reopen them on the next worker or server.
    """
    loop = getattr(worker, "loop", None)
    if loop is None:
        return
    import signal

    from dashboard.board import push

    graceful_exit = worker.handle_exit_signal

    def handle_exit_signal() -> None:
        push.close_streams()
        graceful_exit()

    loop.add_signal_handler(signal.SIGTERM, handle_exit_signal)


logger_class = AccessLogger
loglevel = LOG_LEVEL.lower()

_var_dir = Path(envstr("BOARD_VAR_DIR", "").strip() or Path(__file__).resolve().parent / "var")
_control_socket = _var_dir / "gunicorn.ctl"
# sun_path holds 108 bytes on Linux (104 on the BSDs).
if len(str(_control_socket).encode()) < 100:
    _var_dir.mkdir(parents=True, exist_ok=True)
    control_socket = str(_control_socket)
else:
    control_socket_disable = True
