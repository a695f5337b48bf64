"""gunicorn settings, read from the directory gunicorn starts in (the repository root; /app in the image).

Display tokens are part of kiosk URLs, so the access log goes through a logger
that redacts them from the request line, path, query and referer.
"""

from typing import Any

from gunicorn.glogging import Logger

from dashboard.logredact import redacted


class AccessLogger(Logger):  # type: ignore[misc]
    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        return {
            key: redacted(value) for key, value in super().atoms(resp, req, environ, request_time).items()
        }


logger_class = AccessLogger
