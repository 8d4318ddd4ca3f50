"""What every benchmark script shares: the row format, the command line, the table, the JSON file.

Contract (bench/__main__.py relies on it): each benchmark is a script

    python bench/NAME.py [--quick] [--repeat N] [--json OUT]

that prints its own table and, with --json, writes a list of rows

    {"benchmark", "case", "metric", "unit", "median", "min", "max", "n",
     "target" (text or null), "met" (bool or null), "note"}

A row summarises n repeated measurements of one metric (median, min and max = the spread).
Use `Row.of(...)` to build one from samples, `bench_args()` for the flags and `finish()` to print and write.
A script starts with

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.common import Row, bench_args, finish
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import webtier  # noqa: E402 - importable once ROOT is on the path

FIELDS = ("benchmark", "case", "metric", "unit", "median", "min", "max", "n", "target", "met", "note")


@dataclass
class Row:
    benchmark: str
    case: str
    metric: str
    unit: str
    median: float
    min: float
    max: float
    n: int
    target: str | None = None
    met: bool | None = None
    note: str = ""

    @classmethod
    def of(cls, benchmark: str, case: str, metric: str, unit: str, samples: Sequence[float], *,
           target: str | None = None, ok: Callable[[float], bool] | None = None, note: str = "") -> Row:
        """Summarise samples; `ok(median)` decides `met` when a target is given."""
        values = [float(v) for v in samples]
        if not values:
            raise ValueError(f"{benchmark}/{case}/{metric}: no samples")
        med = statistics.median(values)
        met = bool(ok(med)) if ok is not None else None
        return cls(benchmark, case, metric, unit, med, min(values), max(values), len(values), target, met, note)


def bench_args(description: str | None, *, default_repeat: int = 3) -> argparse.ArgumentParser:
    """The flags every benchmark accepts; add your own before calling parse_args()."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, short durations (smoke run, CI)")
    p.add_argument("--repeat", type=int, default=default_repeat, help="repetitions per case (median and spread)")
    p.add_argument("--json", type=Path, help="write the rows here as JSON")
    return p


def fmt(value: float | None) -> str:
    if value is None:
        return ""
    a = abs(value)
    if a == 0 or 0.01 <= a < 1e6:
        return f"{value:,.3g}" if a < 100 else f"{value:,.0f}"
    return f"{value:.3g}"


def table(rows: Sequence[Row]) -> str:
    """A fixed-width text table (also valid Markdown)."""
    head = ["benchmark", "case", "metric", "median", "min", "max", "unit", "n", "target", "met"]
    body = [[r.benchmark, r.case, r.metric, fmt(r.median), fmt(r.min), fmt(r.max), r.unit, str(r.n),
             r.target or "", {True: "yes", False: "NO", None: ""}[r.met]] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=False)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"
    return "\n".join([line(head), line(["-" * w for w in widths]), *(line(b) for b in body)])


def finish(rows: Sequence[Row], json_path: Path | None) -> None:
    """Print the table (and notes) and write the JSON rows if asked."""
    print(table(rows))
    for r in rows:
        if r.note:
            print(f"  note {r.benchmark}/{r.case}/{r.metric}: {r.note}")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps([asdict(r) for r in rows], indent=1))


def load_rows(path: Path) -> list[Row]:
    return [Row(**{k: d.get(k) for k in FIELDS}) for d in json.loads(path.read_text())]


def env_url(name: str, default: str) -> str:
    return os.environ.get(name, default)


PG_ADMIN_URL = env_url("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = env_url("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")


# --- services shared by the benchmarks that need the production setup ----------------------------------

def pg_url(dbname: str) -> str:
    """PG_ADMIN_URL with another database name."""
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname


def fresh_database(dbname: str) -> str:
    """Drop and create `dbname` (a bench-only database); returns its URL."""
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{dbname}"')
    conn.close()
    return pg_url(dbname)


def production_env(database_url: str, **extra: str) -> dict[str, str]:
    """Environment of a production process (README 'Production') on `database_url`."""
    env = dict(os.environ)
    # Plain HTTP on loopback, no TLS proxy in front: no redirect to https (production's default).
    env.update(DJANGO_ENV="production", DEBUG="false", SECRET_KEY="bench-" + "x" * 50, SECURE_SSL_REDIRECT="false",
               ALLOWED_HOSTS="127.0.0.1,localhost", DATABASE_URL=database_url,
               CELERY_BROKER_URL=REDIS_URL, PYTHONPATH=str(ROOT),
               # The simulator runs on loopback: production refuses private targets unless allowed.
               OUTBOUND_ALLOW_PRIVATE="true")
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    """Run `manage.py ARGS` in a child process with `env`; returns stdout, raises with stderr on failure."""
    import subprocess

    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, input=stdin,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebTier:
    """The product's web tier (`smatch.web.command`: granian serving smatch.wsgi) as a child process on a
    free loopback port; use as a context manager."""

    def __init__(self, env: dict[str, str], workers: int, threads: int, nice: int = 0) -> None:
        self.env, self.workers, self.threads = env, workers, threads
        self.nice = nice  # > 0: the web tier yields the CPU to the worker's fan-out when both are busy
        self.port = free_port()
        self.proc = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def description(self) -> str:
        niced = f", nice {self.nice}" if self.nice else ""
        return f"granian wsgi {self.workers} workers x {self.threads} threads{niced}"

    def worker_pids(self) -> list[int]:
        """The server's child processes (the workers)."""
        assert self.proc is not None
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(x) for x in path.read_text().split()] if path.exists() else []

    def __enter__(self) -> WebTier:
        from smatch.web import command  # imports the smatch package (its Celery app): only when serving

        self.proc = webtier.start(
            [*(["nice", "-n", str(self.nice)] if self.nice else []),  # nice execs: the pid stays the server's
             *command(f"127.0.0.1:{self.port}", self.workers, self.threads)], self.env)
        try:
            webtier.wait_answering(self.proc, f"{self.base}/ocpi/versions", 60)
        except RuntimeError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc:
            webtier.stop(self.proc)


def cpu_seconds(pids: Sequence[int]) -> float:
    """user + system CPU seconds used so far by these processes (Linux /proc; 0 for a vanished one)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (q in [0, 1])."""
    if not sorted_values:
        return float("nan")
    return float(sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))])
