"""gunicorn settings, read from the directory gunicorn starts in (the repository root; /app in the image).

Display tokens are part of kiosk URLs, so the access log goes through a logger
that redacts them from the request line, path, query and referer.

gunicorn 27 opens a control socket, by default one per user
(``$HOME/.gunicorn/gunicorn.ctl``): a second board on the same host would take it
over and delete it when it stops. Each board keeps its own under its ``var/``
(``BOARD_VAR_DIR``), or none when that path is too long for a Unix socket.
"""

from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger

from dashboard.env import envstr
from dashboard.logredact import redacted


class AccessLogger(Logger):  # type: ignore[misc]
    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        return {
            key: redacted(value) for key, value in super().atoms(resp, req, environ, request_time).items()
        }


logger_class = AccessLogger

_var_dir = Path(envstr("BOARD_VAR_DIR", "").strip() or Path(__file__).resolve().parent / "var")
_control_socket = _var_dir / "gunicorn.ctl"
# sun_path holds 108 bytes on Linux (104 on the BSDs).
if len(str(_control_socket).encode()) < 100:
    _var_dir.mkdir(parents=True, exist_ok=True)
    control_socket = str(_control_socket)
else:
    control_socket_disable = True
