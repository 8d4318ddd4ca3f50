"""A tiny real HTTP server on loopback playing the other OCPI party in tests (no mocks of requests)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

Handler = Callable[["Call"], tuple[int, object, dict]]


class Call:
    def __init__(self, method: str, path: str, query: dict, headers: dict, body: object) -> None:
        self.method, self.path, self.query, self.headers, self.body = method, path, query, headers, body


def ok(data: object = None, status_code: int = 1000, http: int = 200, headers: dict | None = None):
    body = {"status_code": status_code, "timestamp": "2025-05-06T17:04:00Z"}
    if data is not None:
        body["data"] = data
    return http, body, headers or {}


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog of 5 refuses connections when 32 workers connect at once


class LoopbackServer:
    """Routes (METHOD, path prefix) -> handler(call) -> (http status, JSON body, headers). Records calls."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the pooled client expects

            def log_message(self, *args) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                call = Call(self.command, parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()},
                            dict(self.headers), json.loads(raw) if raw else None)
                with outer.lock:
                    outer.calls.append(call)
                handler = outer._match(self.command, parts.path)
                status, body, headers = handler(call) if handler else ok(None, 2000, 404)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _serve

        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def _match(self, method: str, path: str) -> Handler | None:
        best = None
        for (m, prefix), handler in self.routes.items():
            if m == method and path.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, handler)
        return best[1] if best else None

    def route(self, method: str, prefix: str, handler: Handler) -> None:
        self.routes[(method, prefix)] = handler

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
