"""The embedded mode: a Celery worker and beat as threads of the current process.

With the default in-memory broker only this process can consume the queue, so the demo and the
local server (`manage.py serve`) start the worker and beat here. Plain `runserver` does not: under
it nothing would consume the queue. Production runs separate processes.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

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


# --- a database of its own --------------------------------------------------------------------

FRESH_MARK = "SMATCH_FRESH_DB"  # set in the re-executed process: the file is fresh, do not restart again


def fresh_embedded_env(db_path: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process on a new SQLite file and the in-memory broker (worker inside)."""
    env = dict(os.environ if environ is None else environ)
    env.update(DATABASE_URL=f"sqlite:///{db_path.resolve()}", CELERY_BROKER_URL="memory://",
               **{FRESH_MARK: str(db_path.resolve())})
    return env


def restart_on_fresh_database(db_path: Path) -> None:
    """Unless already done, delete `db_path` and re-execute this command on it (never returns then).

    The demo and the simulated local server each keep a file of their own, started empty: sessions a
    previous run left ACTIVE would otherwise be steered again, towards a simulator that is gone.
    Settings are read once at start-up, so a new database means a new process.
    """
    if os.environ.get(FRESH_MARK) == str(db_path.resolve()):
        return
    db_path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], fresh_embedded_env(db_path))
