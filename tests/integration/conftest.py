"""Real services: a Celery worker process on Redis, the product on live_server, PostgreSQL.

These fixtures start real processes; tests using them are marked `services`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from smatch import waiting, web
from tests import webtier

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    return (f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
            f"{db['NAME']}")


def _worker_env(live_server_url: str) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "OCPI_BASE_URL": f"{live_server_url}/ocpi",
        "SWEEP_INTERVAL_S": "1",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    return env


class WorkerProcess:
    """A `celery worker` (+ embedded beat) subprocess that tests may kill and restart."""

    def __init__(self, env: dict, log_path: Path) -> None:
        self.env, self.log_path, self.proc = env, log_path, None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "smatch", "worker", "-B", "-l", "INFO", "--pool", "threads",
             "--concurrency", "8", "--without-gossip", "--without-mingle", "-s", str(self.log_path) + ".beat"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if b"ready." in self.log_path.read_bytes():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"celery worker did not start:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, not a shutdown."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def worker_extra_env() -> dict:
    """Extra environment of the worker process (timeouts, threads); override by parametrizing it."""
    return {}


@pytest.fixture
def celery_worker_process(real_services, transactional_db, live_server, tmp_path, worker_extra_env):
    from smatch.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(app.conf.task_default_queue)
    worker = WorkerProcess({**_worker_env(live_server.url), **worker_extra_env}, tmp_path / "worker.log")
    worker.start()
    yield worker
    worker.stop()
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(app.conf.task_default_queue)


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.2):
    return waiting.wait_until(predicate, timeout_s, what, interval_s, error=AssertionError)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A private redis-server on its own port, without persistence: a restart loses every message."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port, self.workdir, self.proc = port, workdir, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        wait_for(lambda: _pings(client), 15, "the private redis-server")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def restart(self, down_s: float = 0.0) -> None:
        self.kill()
        time.sleep(down_s)
        self.start()


def _pings(client) -> bool:
    import redis

    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _use_broker(url: str) -> None:
    """Point this process's Celery app at another broker (producers are pooled per app)."""
    from smatch.celery import app

    app.conf.broker_url = url
    app._pool = None  # not force_close_all(): kombu's global pool registry would hand the closed pool back
    app.amqp._producer_pool = None


@pytest.fixture
def private_redis(real_services, settings, tmp_path):
    """A Redis of the test's own as the broker (for this process and the worker started after it).

    Request it before `celery_worker_process` (argument order) so the worker gets its URL.
    """
    server = RedisServer(free_port(), tmp_path)
    server.start()
    previous = settings.CELERY_BROKER_URL
    settings.CELERY_BROKER_URL = server.url
    _use_broker(server.url)
    yield server
    _use_broker(previous)
    server.kill()


class WebProcess:
    """The product's web tier (smatch.web: granian) on the test database, killable like a crash."""

    def __init__(self, env: dict, log_path: Path, port: int) -> None:
        self.env, self.log_path, self.port, self.proc = env, log_path, port, None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = webtier.start(web.command(f"127.0.0.1:{self.port}", workers=2, threads=8), self.env,
                                  self.log_path)
        webtier.wait_answering(self.proc, f"{self.url}/ocpi/versions", 30, self.log_path)

    def kill(self) -> None:
        if self.proc:
            webtier.stop(self.proc, signal.SIGKILL, 10)


@pytest.fixture
def web_process(real_services, transactional_db, tmp_path):
    """The web tier serving the product against the test database (OCPI_BASE_URL = its own URL)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**_worker_env(url), "DATABASE_URL": _database_url()}
    web = WebProcess(env, tmp_path / "web.log", port)
    web.start()
    yield web
    web.kill()


# The simulator's realism profile and knobs for this run (docs/simulator.md): SIM_PROFILE=extension,
# SIM_KNOBS="lowercase-ids,hub,raw-token"; a test may pass its own. `standard` (kwh and ENERGY/TIME
# periods only, no x_ fields: what real CSMSs send) is the default of the end-to-end suite (issue #10).
SIM_PROFILE_DEFAULT = "standard"


def sim_profile() -> str:
    return os.environ.get("SIM_PROFILE") or SIM_PROFILE_DEFAULT


def sim_knobs() -> str:
    return os.environ.get("SIM_KNOBS", "")


@contextmanager
def registered_simulator(live_server_url: str, settings, points: int = 80, profile: str | None = None,
                         knobs: str | None = None, state_interval_s: int = 300):
    """The CPO simulator on loopback, registered with the product over OCPI credentials, with at
    least three sessions that truly draw above 8 A (the simulator's ground truth) stored by the
    product: what a steering test starts from. Profile and knobs: arguments, else SIM_PROFILE /
    SIM_KNOBS; `state_interval_s`: how often each session's state is pushed (real CSMSs: about 5 min)."""
    from datetime import timedelta

    from ocpi import services as ocpi
    from ocpi.models import Session
    from simulator.clock import SystemClock
    from simulator.config import SimConfig, with_knobs
    from simulator.server import SimulatorServer
    from smatch import clock

    settings.OCPI_BASE_URL = f"{live_server_url}/ocpi"
    now = clock.now().replace(microsecond=0)
    config = with_knobs(SimConfig(points=points, seed=3, start=now - timedelta(hours=2), duration_s=4 * 3600,
                                  state_interval_s=state_interval_s),
                        profile or sim_profile(), sim_knobs() if knobs is None else knobs)
    sim = SimulatorServer(config, SystemClock())
    url = sim.start_in_thread()

    def stored_above_8_a() -> bool:
        above = {sid.upper() for sid in sim.sessions_above_a(sim.now())}
        stored = Session.objects.filter(status="ACTIVE").values_list("session_id", flat=True)
        return len(above & {sid.upper() for sid in stored}) >= 3

    try:
        ocpi.register_with(f"{url}/versions", sim.token_a, name="simulator")
        wait_for(stored_above_8_a, 60, f"sessions above 8 A pushed by the simulator ({config.behaviour.profile})")
        yield sim
    finally:
        sim.stop()
