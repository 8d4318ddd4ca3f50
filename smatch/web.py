"""The web tier: granian serving `smatch.wsgi` (the BRP API, the OCPI endpoints, admin, the console).

    python -m smatch.web                                   # 0.0.0.0:8000, a worker per core
    python -m smatch.web --bind 127.0.0.1:8001 --workers 2 --threads 8 --access-log

Defaults come from the environment: WEB_BIND (0.0.0.0:8000), WEB_CONCURRENCY (worker processes: the
cores), WEB_THREADS (threads per worker running the application: 16), WEB_ACCESS_LOG (1: one line
per request on stdout). The deployment, the end-to-end tests and the benchmarks all start the web
tier through `command`, so they run the same server with the same options.

Why granian: it parses HTTP and keeps connections in Rust, so a request costs the Python only of the
application: web CPU per async result 2.00 -> 1.25 ms and every result of a 16,000-session activation
recorded in 26.2 s instead of 35.8 s, against gunicorn's gthread workers on the same box (the tables
and commands are in docs/capacity.md, "The web server, and its threads"). Why 16 threads: results
that arrive together are written together (ocpi.services.profiles), and a batch is only as large as
the requests in flight; session pushes alone would do better with 2-4 (same section).
Why one process per core: Python runs one thread at a time per process.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def command(bind: str, workers: int, threads: int, access_log: bool = False, log_level: str = "warning",
            extra: Sequence[str] = ()) -> list[str]:
    """The argv that starts the web tier on `bind` (host:port); `extra`: more granian options."""
    host, _, port = bind.rpartition(":")
    return [sys.executable, "-m", "granian", "--interface", "wsgi", "smatch.wsgi:application",
            "--host", host.strip("[]"), "--port", port, "--workers", str(workers), "--blocking-threads", str(threads),
            "--backlog", "2048",  # a result burst waits here instead of being refused
            "--log-level", log_level, "--no-ws", "--respawn-failed-workers",
            "--access-log" if access_log else "--no-access-log", *extra]


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be a whole number (got {raw!r})") from None
    if value < 1:
        raise SystemExit(f"{name} must be at least 1 (got {value})")
    return value


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m smatch.web", description=__doc__.splitlines()[0])
    p.add_argument("--bind", default=os.environ.get("WEB_BIND", "0.0.0.0:8000"), help="host:port")
    p.add_argument("--workers", type=int, default=_int_env("WEB_CONCURRENCY", os.cpu_count() or 1))
    p.add_argument("--threads", type=int, default=_int_env("WEB_THREADS", 16))
    p.add_argument("--access-log", action="store_true", default=os.environ.get("WEB_ACCESS_LOG") == "1")
    p.add_argument("--log-level", default="warning")
    args = p.parse_args(argv)
    argv_out = command(args.bind, args.workers, args.threads, args.access_log, args.log_level)
    os.execv(argv_out[0], argv_out)  # the server replaces this process: signals reach it directly


if __name__ == "__main__":
    main()
