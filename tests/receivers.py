"""Real receivers for notifications: an HTTP server for webhooks and an SMTP server (aiosmtpd) for mail.

The webhook receiver takes every POST on any path and keeps it; it can be told
to answer with another status or to hang (a destination that times out).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Received:
    path: str
    body: str
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """A local HTTP server recording what is posted to it."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.status = 200
        self.hang_seconds = 0.0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace")
                if receiver.hang_seconds:
                    time.sleep(receiver.hang_seconds)
                with receiver.lock:
                    receiver.received.append(Received(self.path, body, time.time()))
                self.send_response(receiver.status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if receiver.status < 400 else b"server error")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.port}"

    def at(self, prefix: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path.startswith(prefix)]

    def clear(self) -> None:
        with self.lock:
            self.received.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MailReceiver:
    """A local SMTP server (aiosmtpd) keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                receiver.messages.append(
                    cast(EmailMessage, message_from_bytes(envelope.content, policy=policy.default))
                )
                return "250 OK"

        with socket.socket() as sock:  # aiosmtpd needs a port of its own (0 is not supported)
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def url(self, to: str = "team@example.com") -> str:
        return f"mailto://127.0.0.1:{self.port}/{to}?from=board@example.com"

    def close(self) -> None:
        self.controller.stop()
