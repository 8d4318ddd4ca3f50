"""The embedded mode: a Celery worker and beat as threads of the current process.

With the default in-memory broker only this process can consume the queue, so the demo (and
`runserver` in embedded mode) start the worker here. Production runs separate processes.
"""

from __future__ import annotations

import threading

from celery.beat import EmbeddedService
from celery.worker import WorkController

from .celery import app

_started: dict[str, object] = {}
_lock = threading.Lock()


def start_embedded_worker(concurrency: int = 4, with_beat: bool = True) -> WorkController:
    """Start (once per process) a thread-pool worker, and optionally beat, inside this process."""
    with _lock:
        if "worker" in _started:
            return _started["worker"]
        worker = WorkController(
            app=app, concurrency=concurrency, pool="threads", loglevel="WARNING", hostname="embedded@localhost",
            without_heartbeat=True, without_mingle=True, without_gossip=True,
        )
        threading.Thread(target=worker.start, name="celery-embedded-worker", daemon=True).start()
        if with_beat:
            beat = EmbeddedService(app, thread=True, scheduler_cls="celery.beat:Scheduler")
            beat.start()
            _started["beat"] = beat
        _started["worker"] = worker
        return worker


def stop_embedded_worker() -> None:
    with _lock:
        beat = _started.pop("beat", None)
        if beat is not None:
            beat.stop()
        worker = _started.pop("worker", None)
        if worker is not None:
            worker.stop(in_sighandler=False)
