"""A TCP server on loopback that counts the connections it accepts and answers each with
`serve(conn, stop)`: what a misbehaving or internal HTTP party looks like at the socket level
(tests/ocpi/test_transport.py, tests/trust/test_ssrf.py)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

Serve = Callable[[socket.socket, threading.Event], None]


class RawServer:
    def __init__(self, serve: Serve, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_server((host, 0))
        self.host, self.port = host, self.sock.getsockname()[1]
        self.accepted = 0
        self.serve = serve
        self.stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def url(self, path: str = "", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def _run(self) -> None:
        self.sock.settimeout(0.05)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            self.serve(conn, self.stop)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
