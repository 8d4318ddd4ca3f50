"""gunicorn's settings for the web tier (read from the working directory; command-line flags win).

    gunicorn smatch.wsgi:application              # these settings
    WEB_CONCURRENCY=4 gunicorn smatch.wsgi:application

Why threads: the OCPI requests (async results, session pushes) are short and spend most of their
time waiting for PostgreSQL; a thread per request waiting costs little, and async results that
arrive together are written together by one of those threads (ocpi.services.profiles: one
transaction for the batch), so more threads under a burst mean fewer transactions, not more CPU.
Why one process per core: Python runs one thread at a time per process; more processes than cores
only add context switches (docs/capacity.md: sizing, bench/dispatch_fanout.py: the figures).
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 16))
keepalive = 30  # a CPO keeps its connection for the next push or result
backlog = 2048  # a result burst queues here instead of being refused
timeout = 60
