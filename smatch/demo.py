"""`make demo`: the whole loop on the embedded default, in simulated time.

Our web server, an in-process Celery worker and the CPO simulator all run in this process on
loopback; they talk real HTTP and real OCPI 2.2.1. A BRP posts a signal over the REST API, its
policy relays it, the simulator's sessions drop to 8 A, and they come back at the ISP boundary.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests
from django.conf import settings
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application

from . import clock

SIM_START = datetime(2025, 5, 6, 17, 1, tzinfo=UTC)  # a Tuesday evening peak, early in an ISP


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # the demo prints its own story
        pass


def start_web_server() -> str:
    """Serve the product on a free loopback port in a background thread; return its base URL."""
    server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler, allow_reuse_address=True)
    server.daemon_threads = True
    server.set_app(get_wsgi_application())
    threading.Thread(target=server.serve_forever, name="demo-web", daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


@dataclass
class DemoReport:
    sessions_known: int
    sessions_throttled: int
    shed_kw_at_meters: float
    latency_ms: dict
    still_capped: int
    summary: dict


def wait_until(predicate, timeout_s: float, interval_s: float = 0.25):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError("the demo waited too long; see the log above")


def _aggregate_kw(truth, t0: datetime, t1: datetime) -> float:
    series = truth.power_kw(t0, t1)
    return float(series.mean()) if len(series) else 0.0


def run_demo(points: int = 300, speed: float = 20.0, seed: int = 7, say=print) -> DemoReport:
    """Run the loop once and return what happened (the command prints it)."""
    from flexibility.models import Activation, Brp, Signal
    from flexibility.services import create_brp
    from flexibility.summary import activation_summary
    from ocpi_client import services as ocpi
    from ocpi_client.models import Session
    from simulator.config import SimConfig
    from simulator.server import SimulatorServer

    from .embedded import start_embedded_worker

    logging.getLogger("celery").setLevel(logging.WARNING)
    logging.getLogger("kombu").setLevel(logging.ERROR)
    sim_clock = clock.ScaledClock(SIM_START, time.time(), speed)
    clock.set_clock(sim_clock)
    web_url = start_web_server()
    settings.OCPI_BASE_URL = f"{web_url}/ocpi"
    start_embedded_worker()
    say(f"product on {web_url}; simulated time starts {SIM_START:%Y-%m-%d %H:%M}Z at {speed:g}x")

    config = SimConfig(points=points, seed=seed, start=SIM_START - timedelta(hours=2), duration_s=6 * 3600)
    simulator = SimulatorServer(config, sim_clock)
    sim_url = simulator.start_in_thread()
    say(f"CPO simulator with {config.n_points} charge points on {sim_url}")
    party = ocpi.register_with(f"{sim_url}/versions", simulator.token_a, name="CPO simulator")
    say(f"registered over OCPI 2.2.1 credentials with {party}")

    wait_until(lambda: Session.objects.filter(party=party, status="ACTIVE").count() >= 5, 120)
    time.sleep(60 / speed)  # a simulated minute more of pushes
    active = Session.objects.filter(party=party, status="ACTIVE").count()
    say(f"sessions flowing in: {Session.objects.filter(party=party).count()} known, {active} active")

    _brp, token = create_brp(f"Demo supplier {int(time.time())}", Brp.Policy.AUTO)
    posted_at = clock.now()
    answer = requests.post(
        f"{web_url}/api/v1/signals/",
        json={"external_id": f"demo-{posted_at:%H%M%S}", "direction": "reduce_consumption"},
        headers={"Authorization": f"Token {token}"},
        timeout=10,
    )
    answer.raise_for_status()
    signal_id = answer.json()["id"]
    say(f"BRP posted a signal at {posted_at:%H:%M:%S}Z: HTTP {answer.status_code}, status {answer.json()['status']}")

    activation = wait_until(lambda: Activation.objects.filter(signal_id=signal_id).first(), 30)
    say(f"relayed by policy at {activation.relayed_at:%H:%M:%S}Z, ends at {activation.ends_at:%H:%M:%S}Z")
    wait_until(lambda: Activation.objects.filter(pk=activation.pk).exclude(status="dispatching").exists(), 60)
    capped = [s for s in simulator.ongoing_session_ids() if simulator.limit_in_force_a(s) == 8.0]
    say(f"simulator sessions now limited to 8 A: {len(capped)}")

    wait_until(lambda: Signal.objects.get(pk=signal_id).status == Signal.Status.RESTORED, 20 * 60 / speed + 60)
    activation.refresh_from_db()
    time.sleep(30 / speed)
    simulator.sync()
    truth = simulator.truth()
    before = _aggregate_kw(truth, activation.relayed_at - timedelta(minutes=2), activation.relayed_at)
    during = _aggregate_kw(truth, activation.relayed_at + timedelta(seconds=30), activation.ends_at)
    still_capped = [s for s in simulator.ongoing_session_ids() if simulator.limit_in_force_a(s) is not None]
    summary = activation_summary(activation)
    simulator.stop()
    return DemoReport(
        sessions_known=Session.objects.filter(party=party).count(),
        sessions_throttled=summary["sessions_throttled"],
        shed_kw_at_meters=before - during,
        latency_ms=summary["latency_ms"],
        still_capped=len(still_capped),
        summary=summary,
    )
