"""The local server of `manage.py serve`: web, worker and beat in one process, optionally a simulated CPO.

On the embedded default (SQLite, in-memory broker) only this process can consume the queue, so the
worker and the beat sweep run here as threads: an `auto` BRP's signal is relayed, dispatched and
restored, and an operator's relay in admin dispatches. With `simulator_points` a CPO simulator
joins on loopback in scaled time, registered over OCPI 2.2.1 like a real platform.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.management import call_command

from flexibility.models import Brp
from flexibility.services import create_brp
from ocpi import services as ocpi
from simulator.config import SimConfig
from simulator.server import SimulatorServer
from smatch import clock
from smatch.embedded import start_embedded_worker
from smatch.staff import any_staff, create_staff

SIM_START = datetime(2025, 5, 6, 17, 1, tzinfo=UTC)  # a Tuesday evening peak: many sessions above 8 A
FIRST_LOGIN = "admin"
LOCAL_BRP = "Local supplier"


class _AtLeast(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


@dataclass
class LocalServer:
    """What `start` set up, for the start-up banner."""

    web_url: str
    worker: str
    login: tuple[str, str] | None = None  # (username, one-time password) when one was created
    simulator_url: str = ""
    simulated_time: str = ""
    brp_token: str = ""  # a manual-policy BRP made for the simulated run, to post signals with
    notes: list[str] = field(default_factory=list)


def _wait_for_port(host: str, port: int, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def _first_login() -> tuple[str, str] | None:
    """An operator account when the database has no staff yet (a fresh clone), else None."""
    if any_staff():
        return None
    user, password = create_staff(FIRST_LOGIN, "operator")
    return user.username, password


def _attach_simulator(host: str, port: int, points: int, speed: float, seed: int, server: LocalServer) -> None:
    sim_clock = clock.ScaledClock(SIM_START, time.time(), speed)
    clock.set_clock(sim_clock)  # web, worker and simulator threads share one simulated time
    config = SimConfig(points=points, seed=seed, start=SIM_START - timedelta(hours=2), duration_s=48 * 3600)
    simulator = SimulatorServer(config, sim_clock)
    server.simulator_url = simulator.start_in_thread()
    server.simulated_time = f"starts {SIM_START:%Y-%m-%d %H:%M}Z, runs {speed:g}x faster than the wall clock"

    def register() -> None:  # the simulator calls our versions endpoint back, so the web server must be up
        if _wait_for_port(host, port):
            # Registration queues the first pull: every ongoing session is known at once.
            ocpi.register_with(f"{server.simulator_url}/versions", simulator.token_a, name="CPO simulator")

    threading.Thread(target=register, name="simulator-registration", daemon=True).start()
    _brp, server.brp_token = create_brp(LOCAL_BRP, Brp.Policy.MANUAL)


def start(host: str, port: int, simulator_points: int = 0, speed: float = 10.0, seed: int = 7) -> LocalServer:
    """Migrate, start the worker and beat (embedded broker), offer a login, attach the simulator."""
    call_command("migrate", verbosity=0, interactive=False)
    # Every session push would print a request line and two task lines: keep the terminal for what matters.
    # A filter, not only a level: the worker thread's Django fixup runs django.setup() again, whose
    # logging config puts django.server back to INFO and would flood the banner away.
    for name, level in (("celery", logging.WARNING), ("kombu", logging.ERROR), ("django.server", logging.WARNING)):
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).addFilter(_AtLeast(level))
    web_url = f"http://{host}:{port}"
    if settings.OCPI_BASE_URL == "http://127.0.0.1:8000/ocpi":  # the default: follow the port we serve on
        settings.OCPI_BASE_URL = f"{web_url}/ocpi"
    if settings.CELERY_EMBEDDED:
        start_embedded_worker(with_beat=True)
        worker = "worker and beat sweep: threads of this process (in-memory broker)"
    else:
        worker = (f"broker {settings.CELERY_BROKER_URL}: start `celery -A smatch worker` and "
                  "`celery -A smatch beat` beside this server")
    server = LocalServer(web_url=web_url, worker=worker, login=_first_login())
    if simulator_points:
        _attach_simulator(host, port, simulator_points, speed, seed, server)
    return server


def banner(server: LocalServer) -> list[str]:
    """What runs where, and how to log in."""
    lines = [
        f"SMATCH open SCSP on {server.web_url}/",
        f"  admin and operator console  {server.web_url}/admin/  (console: {server.web_url}/admin/console/)",
        f"  BRP API and its docs        {server.web_url}/api/v1/signals/   {server.web_url}/api/docs/",
        f"  OCPI 2.2.1 versions         {server.web_url}/ocpi/versions",
        f"  {server.worker}",
    ]
    if server.simulator_url:
        lines += [f"  CPO simulator               {server.simulator_url}/versions (registers over OCPI as this starts)",
                  f"  simulated time              {server.simulated_time}"]
    if server.brp_token:
        lines += [f"  BRP {LOCAL_BRP!r} (an operator decides) posts a signal with:",
                  f"    curl -X POST {server.web_url}/api/v1/signals/ -H 'Authorization: Token {server.brp_token}' "
                  "-H 'Content-Type: application/json' -d '{\"external_id\": \"try-1\", "
                  "\"direction\": \"reduce_consumption\"}'   (a new external_id for each new signal)"]
    else:
        lines.append("  a BRP and its API token: .venv/bin/python manage.py brp_create NAME --policy auto")
    if server.login:
        lines.append(f"  log in as {server.login[0]!r} with the one-time password {server.login[1]}")
    else:
        lines.append("  log in with your staff account, or create one: "
                     ".venv/bin/python manage.py staff_create NAME --role operator")
    return lines
