"""`make demo`: the whole loop on the embedded default, in simulated time.

Our web server, an in-process Celery worker and the CPO simulator all run in this process on
loopback; they talk real HTTP and real OCPI 2.2.1. A BRP posts a signal over the REST API at a
fixed simulated instant, its policy relays it, the simulator's sessions drop to 8 A, and they come
back at the ISP boundary. The command runs it on a database file of its own, started empty, so the
same seed gives the same sessions, the same plan and the same figures.

Twice the simulator's clock stops at an instant while the product's runs on, so that what the
product knows does not depend on how busy the machine is: at the start, while the simulator
registers and the product pulls its sessions, and at the signal, until every state up to that
instant has been pushed and the plan is made; then the simulator catches up. (Without the stop at
the signal a loaded machine delivered pushes late: two runs of seed 7 counted 138 and 132 sessions
charging at the signal.) The product's latencies stay wall-clock measurements.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests
from django.conf import settings
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application

from flexibility.console_figures import LATENCY_WORDS, skips_in_words
from flexibility.models import Activation, Brp, Signal
from flexibility.services import create_brp
from flexibility.summary import activation_summary
from localrun.server import _AtLeast
from ocpi import services as ocpi
from ocpi.models import Session
from simulator.config import SimConfig
from simulator.server import SimulatorServer
from smatch import clock, waiting
from smatch.embedded import start_embedded_worker

SIM_START = datetime(2025, 5, 6, 17, 1, tzinfo=UTC)  # a Tuesday evening peak, early in an ISP
# The BRP posts at this simulated instant, every run: by then every ongoing session has pushed a state
# (states come every 5 simulated minutes; those made before registration are not pushed).
SIGNAL_AT = SIM_START + timedelta(minutes=6)


class StoppableView:
    """The simulator's view of the product's clock: the same time, except that it goes no further
    than `stop_at` while that is set (the simulator makes no state after it, then catches up)."""

    def __init__(self, clock) -> None:
        self.clock, self.stop_at = clock, None

    def now(self) -> datetime:
        now, stop = self.clock.now(), self.stop_at
        return min(now, stop) if stop is not None else now


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
    """What one run did. `rows` is the summary table (label, value, unit); `same_every_run` the part
    a rerun with the same seed must reproduce exactly (latencies are wall-clock and the meters' shed
    is averaged over a window starting at the relay instant, so they stay out of it)."""

    rows: list[tuple[str, float | int | None, str]]
    same_every_run: dict[str, object]


def wait_until(predicate: Callable[[], object], timeout_s: float):
    return waiting.wait_until(predicate, timeout_s, "the demo (see the log above)")


def _aggregate_kw(truth, t0: datetime, t1: datetime) -> float:
    series = truth.power_kw(t0, t1)
    return float(series.mean()) if len(series) else 0.0


def run_demo(points: int = 300, speed: float = 20.0, seed: int = 7, say=print) -> DemoReport:
    """Run the loop once on this process's (empty) database and return what happened."""
    logging.getLogger("celery").setLevel(logging.WARNING)
    logging.getLogger("kombu").setLevel(logging.ERROR)
    # No "Broken pipe" lines in the story: a filter, as the worker thread's django.setup() puts the level back.
    logging.getLogger("django.server").addFilter(_AtLeast(logging.WARNING))
    sim_clock = clock.ScaledClock(SIM_START, time.time(), speed)
    clock.set_clock(sim_clock)
    web_url = start_web_server()
    settings.OCPI_BASE_URL = f"{web_url}/ocpi"
    start_embedded_worker()
    say(f"product on {web_url}; simulated time starts {SIM_START:%Y-%m-%d %H:%M}Z at {speed:g}x")

    config = SimConfig(points=points, seed=seed, start=SIM_START - timedelta(hours=2), duration_s=6 * 3600)
    sim_view = StoppableView(sim_clock)
    sim_view.stop_at = SIM_START
    simulator = SimulatorServer(config, sim_view)
    sim_url = simulator.start_in_thread()
    say(f"CPO simulator with {config.n_points} charge points on {sim_url}")
    simulator.sync()  # two hours of physics before the start; states made before registration are not pushed
    party = ocpi.register_with(f"{sim_url}/versions", simulator.token_a, name="CPO simulator")
    # Every ongoing session and its draw at the start, whatever the machine's speed (pushes come every
    # 5 simulated minutes).
    ocpi.pull_sessions(party, date_to=SIM_START + timedelta(seconds=1))
    say(f"registered over OCPI 2.2.1 credentials with {party}")
    sim_view.stop_at = SIGNAL_AT

    wait_until(lambda: clock.now() >= SIGNAL_AT, 6 * 60 / speed + 30)
    simulator.sync()  # every state up to the signal made, and pushed before the BRP posts
    wait_until(lambda: simulator.pushes_pending() == 0, 60)
    # Charging sessions only: a session that ended around this instant is known or not depending on
    # when its last push landed, which would make a rerun's figures differ by one.
    active = Session.objects.filter(party=party, status="ACTIVE").count()
    _brp, token = create_brp("Demo supplier", Brp.Policy.AUTO)
    answer = requests.post(
        f"{web_url}/api/v1/signals/", json={"external_id": "demo-1", "direction": "reduce_consumption"},
        headers={"Authorization": f"Token {token}"}, timeout=10,
    )
    answer.raise_for_status()
    signal_id = answer.json()["id"]
    say(f"BRP posted a signal at {clock.now():%H:%M:%S}Z: HTTP {answer.status_code}, status {answer.json()['status']}")

    activation = wait_until(lambda: Activation.objects.filter(signal_id=signal_id).first(), 30)
    say(f"relayed by policy at {activation.relayed_at:%H:%M:%S}Z, ends at {activation.ends_at:%H:%M:%S}Z")
    wait_until(lambda: Activation.objects.filter(pk=activation.pk).exclude(status="dispatching").exists(), 60)
    sim_view.stop_at = None  # the plan is made: the simulator catches up
    capped = activation.curtailments.count()

    def limited() -> int:
        return sum(1 for s in simulator.ongoing_session_ids() if simulator.limit_in_force_a(s) == 8.0)

    try:  # the CPO applies each profile as its PUT lands: count once all are in, not half-way
        wait_until(lambda: limited() >= capped, 10)
    except TimeoutError:
        pass
    say(f"simulator sessions now limited to 8 A: {limited()} of the {capped} capped")

    wait_until(lambda: Signal.objects.get(pk=signal_id).status == Signal.Status.RESTORED, 20 * 60 / speed + 60)
    activation.refresh_from_db()
    time.sleep(30 / speed)
    simulator.sync()
    truth = simulator.truth()
    before = _aggregate_kw(truth, activation.relayed_at - timedelta(minutes=2), activation.relayed_at)
    during = _aggregate_kw(truth, activation.relayed_at + timedelta(seconds=30), activation.ends_at)
    still_capped = sum(1 for s in simulator.ongoing_session_ids() if simulator.limit_in_force_a(s) is not None)
    simulator.stop()
    return _report(activation, active, before - during, still_capped, speed)


def _report(activation: Activation, active: int, measured_kw: float, still_capped: int, speed: float) -> DemoReport:
    summary = activation_summary(activation)
    caps = activation.curtailments
    first = caps.order_by("starts_at").values_list("starts_at", flat=True).first()
    at_relay = caps.filter(starts_at__lte=first + timedelta(seconds=1)).count() if first else 0
    skips = skips_in_words(activation.skipped or {})
    rows: list[tuple[str, float | int | None, str]] = [
        ("sessions charging at the signal", active, ""),
        *((f"  not capped: {reason}", n, "") for reason, n in skips),
        ("  eligible, capped at 8 A at relay", at_relay, ""),
        ("sessions that started during the activation, capped", caps.count() - at_relay, ""),
        ("caps the CPO accepted", summary["sessions_throttled"], ""),
        ("caps the CPO refused", summary["sessions_refused"], ""),
        ("caps without an answer", summary["sessions_failed"], ""),
        ("expected shed (planned)", round(activation.expected_kw, 1), "kW"),
        ("expected shed of the accepted caps", round(summary["dispatched_kw"], 1), "kW"),
        ("measured shed at the simulator's meters", round(measured_kw, 1), "kW"),
        *((f"{LATENCY_WORDS[k]} after the signal (wall clock)", None if v is None else round(v / speed / 1000, 2), "s")
          for k, v in summary["latency_ms"].items()),
        ("sessions still capped after the restore", still_capped, ""),
    ]
    same = {
        "active": active, "skipped": dict(activation.skipped or {}), "at_relay": at_relay,
        "expected_kw": round(activation.expected_kw, 1),
        "accepted": summary["sessions_throttled"], "still_capped": still_capped,
    }
    return DemoReport(rows, same)
