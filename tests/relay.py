"""A TCP relay a test can close and reopen: the server behind it "goes away" and comes back."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpRelay:
    """A TCP relay on a fixed port in front of a server, so a test can take "the server"
    away (connections are refused) and bring it back without touching the server itself."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            if self._listener is not None:
                # shutdown() wakes the thread blocked in accept(); close() alone would not stop listening.
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self._relay(client)

    def _relay(self, client: socket.socket) -> None:
        """Connect one accepted client to the server and pump both ways (on threads of their own)."""
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return
        with self._lock:
            self._conns += [client, upstream]
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)


class StreamBlockingRelay(TcpRelay):
    """An HTTP relay that lets every request through except the change stream's (``/stream/``):
    those it holds with no answer (``hold``: a proxy that buffers a response until it ends)
    or refuses by closing the connection (``refuse``). Each forwarded request is sent with
    ``Connection: close``, so every request arrives on a connection of its own and is seen."""

    def __init__(self, target_port: int, how: str) -> None:
        super().__init__(target_port)
        self.how = how
        self.held: list[socket.socket] = []

    def _relay(self, client: socket.socket) -> None:
        # Reading the request head blocks: each client on a thread of its own.
        threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if not data:
                client.close()
                return
            head += data
        request_line, _, rest = head.partition(b"\r\n")
        if b"/stream/" in request_line:
            if self.how == "refuse":
                client.close()
            else:
                with self._lock:
                    self.held.append(client)
                    self._conns.append(client)
            return
        headers, _, body = rest.partition(b"\r\n\r\n")
        kept = [h for h in headers.split(b"\r\n") if h and not h.lower().startswith(b"connection:")]
        head = b"\r\n".join([request_line, *kept, b"Connection: close"]) + b"\r\n\r\n" + body
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            upstream.sendall(head)
        except OSError:
            client.close()
            return
        with self._lock:
            self._conns += [client, upstream]
        threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
        self._pump(upstream, client)
