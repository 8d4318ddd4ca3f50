"""The Celery app, and the one broker-safe way to queue a task. Tasks live in each app's tasks.py."""

import logging
import os

from celery import Celery
from django.db import transaction

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smatch.settings")

log = logging.getLogger(__name__)

app = Celery("smatch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def enqueue(task, *args, countdown: float | None = None) -> bool:
    """Queue a task (call it after commit); if the broker is down, log it and return False.

    Whatever the task was to do is committed already and the sweep finds it (a stalled or
    unplanned activation, an overdue restore, a due policy relay, a session left uncapped), so an
    unreachable broker delays the work, never loses it, and never turns a request into an error.
    """
    try:
        task.apply_async(args, countdown=countdown)
    except Exception:  # kombu's OperationalError and the transport's own connection errors
        log.exception("could not queue %s%s: the sweep will pick it up", task.name, args)
        return False
    return True


def enqueue_on_commit(task_name: str, *args, countdown: float | None = None) -> None:
    """Queue the task of this explicit name once the current transaction commits (`enqueue` then).

    By name, so a service queues its follow-up without importing the tasks module that imports it.
    Outside a transaction it is queued at once.
    """
    transaction.on_commit(lambda: enqueue(app.signature(task_name), *args, countdown=countdown))
