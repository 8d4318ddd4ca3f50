"""The product against the CPO simulator's realism profiles and behaviours (issue #10, "Done means").

Real PostgreSQL, Redis, a Celery worker and the simulator over HTTP. Each run registers a simulator
with one realism profile and a group of behaviour knobs that do not interact, relays one short
activation and checks what a user needs, judged by the simulator's truth, never by what the product
believes:

- the sessions truly above 8 A per phase at the signal were capped (ids compared without case);
- every cap ended restored on time, and the simulator's EVSEs hold no limit afterwards;
- each cap's states are consistent with what the platform answered (results or none);
- the product answered no request with HTTP 500.

The "Done means" figures on the `standard` profile (several activations, 5 % of EVSEs ignoring
limits) are a benchmark: `bench/realism.py` drives them with the helpers below and judges the targets.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from flexibility import services
from flexibility.models import Activation, Brp, Curtailment, EvseResponsiveness
from flexibility.services import activations
from ocpi import services as ocpi
from ocpi.models import ChargingProfileCall, Session
from simulator.batch import evse_uid
from simulator.clock import SystemClock
from simulator.config import SimConfig, with_knobs
from simulator.server import SimulatorServer
from smatch import clock

from .conftest import wait_for

pytestmark = pytest.mark.services

# Judging delivery within seconds rather than minutes: states every few seconds (below), a short grace.
FAST_JUDGING = {"DELIVERY_GRACE_S": "8", "DELIVERY_RESUME_WINDOW_S": "15", "SWEEP_INTERVAL_S": "1"}
RESTORE_SLACK = timedelta(seconds=3)  # the DELETE's round trip after the planned end
# Outside the test: at most this share of the sessions truly above 8 A may be missed (sessions that
# started seconds before the signal and have no state yet). The bench holds the product to 98 %.
MAX_MISSED_SHARE = 0.10

# (profile, knobs): knobs grouped where they do not interact, every profile and knob at least once.
RUNS = [
    pytest.param("standard", "", id="standard"),
    pytest.param("power-only", "lowercase-ids,check-routing,active-profile-push", id="power-only+ids+routing"),
    pytest.param("current-average", "hub,raw-token,no-locations", id="current-average+hub+raw-token"),
    pytest.param("extension", "no-async-result,non-responding=0.3,no-resume=0.3",
                 id="extension+no-results+ignoring+no-resume"),
    pytest.param("standard", "too-often-first-n=1,too-often-min-interval-s=3,result-attempts=1,lowercase-ids",
                 id="standard+too-often"),
]


@pytest.fixture(autouse=True)
def connection_per_request(settings, monkeypatch):
    """live_server answers each request in a new thread; a persistent connection (DB_CONN_MAX_AGE)
    would outlive it, and dozens of pushes a second exhaust PostgreSQL's max_connections on a
    shared machine. Production's fixed web threads (smatch.web) do not have that problem."""
    monkeypatch.setitem(settings.DATABASES["default"], "CONN_MAX_AGE", 0)


@contextmanager
def simulator_for(live_server_url: str, settings, profile: str, knobs: str, *, seed: int = 3, points: int = 80,
                  state_interval_s: int = 5):
    """A registered simulator sending states every few seconds (so that kWh-only profiles give a
    draw within the test), with at least three sessions truly above 8 A stored by the product."""
    settings.OCPI_BASE_URL = f"{live_server_url}/ocpi"
    now = clock.now().replace(microsecond=0)
    config = with_knobs(SimConfig(points=points, seed=seed, start=now - timedelta(minutes=20), duration_s=3600,
                                  state_interval_s=state_interval_s, state_jitter_s=1, complete_when_full_share=0.0,
                                  early_unplug_share=0.0), profile, knobs)
    sim = SimulatorServer(config, SystemClock())
    url = sim.start_in_thread()

    def stored_above_8_a() -> bool:
        above = {sid.upper() for sid in sim.sessions_above_a(sim.now())}
        stored = {sid.upper() for sid in Session.objects.filter(status="ACTIVE").values_list("session_id", flat=True)}
        return len(above & stored) >= 3

    try:
        ocpi.register_with(f"{url}/versions", sim.token_a, name=f"simulator {profile}")
        registered = clock.now()
        wait_for(stored_above_8_a, 60, f"sessions above 8 A pushed by the simulator ({profile} {knobs})")
        # Two states of each session since we registered: a kWh-only profile gives a draw from the
        # second one. What is measured is the steady state, not the first seconds of a new party.
        second_state = registered + timedelta(seconds=2 * state_interval_s + 2)
        wait_for(lambda: clock.now() >= second_state, 2 * state_interval_s + 5, "a second state of every session")
        yield sim
    finally:
        sim.stop()


@dataclass
class Outcome:
    """One activation judged against the simulator's truth."""

    activation_id: int
    above: set[str]  # upper-cased ids of the sessions truly above 8 A at the signal
    capped: set[str]  # upper-cased ids of the sessions the product capped (any status)
    expected_kw: float  # the product's expected shed of the caps it sent
    true_shed_kw: float  # counterfactual minus actual, mean over the window the caps were in force
    skipped: dict = field(default_factory=dict)
    preview_kw: tuple[float, float] = (0.0, 0.0)  # the preview's low-high expected shed just before the signal

    @property
    def missed(self) -> set[str]:
        return self.above - self.capped

    @property
    def capped_share(self) -> float:
        return len(self.above & self.capped) / len(self.above) if self.above else 1.0


def limits_in_force(sim) -> dict[str, float]:
    return {s.upper(): lim for s in sim.ongoing_session_ids() if (lim := sim.limit_in_force_a(s)) is not None}


def responsive(sim, session_id: str) -> bool:
    """Does the EVSE of this session obey limits (the simulator's truth)?"""
    def inner():
        return bool(sim.fleet.responsive[int(sim.fleet.pop.point[sim.fleet.session_index(session_id)])])
    return sim.call(inner)


def caps_applied(sim, activation_id: int, above: set[str]) -> bool:
    """Every ongoing session truly above 8 A that the product capped is held at 8 A by its EVSE
    (EVSEs that ignore limits apart): the platform applied what we sent, retries included."""
    ongoing = {s.upper() for s in sim.ongoing_session_ids()}
    capped = {s.upper() for s in Curtailment.objects.filter(activation_id=activation_id).values_list(
        "session__session_id", flat=True)}
    held = limits_in_force(sim)
    return all(held.get(s) == 8.0 for s in capped & above & ongoing if responsive(sim, s))


def run_activation(sim, brp, external_id: str, seconds: int, *, check_applied: bool = False) -> Outcome:
    """Relay one signal lasting `seconds`, wait for its restore, and judge it by the truth; with
    `check_applied`, first wait (within the window) until the simulator holds the caps."""
    preview = activations.preview()  # the range the product shows beside its best estimate
    end = clock.now() + timedelta(seconds=seconds)
    signal = services.receive_signal(brp, external_id, "reduce_consumption", end_time=end).signal
    activation = wait_for(lambda: Activation.objects.filter(signal=signal).exclude(status="dispatching").first(),
                          30, "the relay")
    above = {sid.upper() for sid in sim.sessions_above_a(activation.relayed_at)}
    if check_applied:
        wait_for(lambda: caps_applied(sim, activation.pk, above), seconds - 5, "the caps in force at the EVSEs", 1.0)
    wait_for(lambda: Activation.objects.get(pk=activation.pk).status == Activation.Status.RESTORED,
             seconds + 60, "the restore")
    activation.refresh_from_db()
    caps = Curtailment.objects.filter(activation=activation)
    capped = {sid.upper() for sid in caps.values_list("session__session_id", flat=True)}
    sent = caps.exclude(restored_from__in=("", "planned")).exclude(status__in=("refused", "failed"))
    expected_kw = sum(sent.values_list("expected_kw", flat=True))
    return Outcome(activation.pk, above, capped, expected_kw,
                   true_shed_kw(sim, activation.relayed_at + timedelta(seconds=8), activation.ends_at),
                   activation.skipped, (preview.expected_kw_low, preview.expected_kw_high))


def true_shed_kw(sim, t0: datetime, t1: datetime) -> float:
    """Mean aggregate kW the fleet did not draw in [t0, t1) because of the profiles (truth)."""
    if t1 <= t0 + timedelta(seconds=1):
        return 0.0
    actual = sim.truth().power_kw(t0, t1).mean()
    return float(sim.counterfactual_truth().power_kw(t0, t1).mean() - actual)


def assert_caps_consistent(activation_id: int, knobs: str) -> None:
    """Every cap ended in a final state that matches what the CPO answered, restored by the end."""
    activation = Activation.objects.get(pk=activation_id)
    for cap in Curtailment.objects.filter(activation=activation).select_related("session"):
        where = f"cap of {cap.session.session_id}: {cap.status} from {cap.restored_from!r}"
        assert cap.status in ("restored", "refused", "failed"), where
        calls = ChargingProfileCall.objects.filter(kind="SET", purpose_id=cap.pk)
        results = set(calls.exclude(result="").values_list("result", flat=True))
        if cap.status == "restored":
            assert cap.restored_at is not None and cap.restored_at <= activation.ends_at + RESTORE_SLACK, where
            assert cap.restored_from in ("sent", "pending", "in_force", "no_result"), where
            if cap.restored_from == "in_force":
                assert "ACCEPTED" in results, f"{where}; results {results}"
            if cap.restored_from in ("pending", "no_result"):
                assert "ACCEPTED" not in results, f"{where}; results {results}"
        if "no-async-result" in knobs:
            assert not results, f"{where}: a result the simulator never sent {results}"
            assert cap.restored_from != "in_force", where


def assert_resumption_right(sim, activation_id: int) -> None:
    """After the restore, each cap is judged resumed / did not resume (a driver at risk) as the truth says."""
    caps = Curtailment.objects.filter(activation_id=activation_id, status="restored")
    wait_for(lambda: not caps.filter(resumption="").exists(), 60, "every restored cap judged for resumption")
    judged = [(sid, r) for sid, r in caps.values_list("session__session_id", "resumption") if r != "no_data"]
    wrong = [(sid, r) for sid, r in judged
             if (r == "not_resumed") != (sim.session_truth(sid).not_resumed_s is not None)]
    print(f"resumption judged {len(judged)}, wrong {wrong}")
    assert judged and len(wrong) <= 0.1 * len(judged), wrong


def server_errors(caplog) -> list[str]:
    """Requests the product answered with HTTP 5xx: Django's own log, and the simulator's view."""
    errors = [r.getMessage() for r in caplog.records if r.name == "django.request" and r.levelno >= logging.ERROR]
    errors += [r.getMessage() for r in caplog.records
               if r.name == "simulator.server" and " -> HTTP 5" in r.getMessage()]
    return errors


@pytest.mark.parametrize("worker_extra_env", [FAST_JUDGING])
@pytest.mark.parametrize(("profile", "knobs"), RUNS)
def test_realism_run(profile, knobs, celery_worker_process, live_server, settings, caplog):
    caplog.set_level(logging.INFO, logger="simulator.server")
    with simulator_for(live_server.url, settings, profile, knobs) as sim:
        brp, _ = services.create_brp(f"auto BRP {profile}", Brp.Policy.AUTO)
        outcome = run_activation(sim, brp, f"realism-{profile}", seconds=30, check_applied=True)
        print(f"\n{profile} [{knobs}]: above 8 A {len(outcome.above)}, capped {len(outcome.capped)}, "
              f"missed {sorted(outcome.missed)}, skipped {outcome.skipped}")
        assert outcome.above, "no session above 8 A at the signal: the run proves nothing"
        assert len(outcome.missed) <= MAX_MISSED_SHARE * len(outcome.above), (
            f"missed {sorted(outcome.missed)} of {len(outcome.above)}; skipped {outcome.skipped}")
        wait_for(lambda: not limits_in_force(sim), 10, "the simulator's EVSEs to drop every limit")
        assert_caps_consistent(outcome.activation_id, knobs)
        if "too-often" in knobs:
            # Every first request was TOO_OFTEN: the caps in force (checked above) came from a later try.
            assert Curtailment.objects.filter(activation_id=outcome.activation_id, attempts__gte=2).exists()
        if "no-resume" in knobs:
            assert_resumption_right(sim, outcome.activation_id)
        if "non-responding" in knobs:
            # A flag is a claim about the CPO's EVSE: it must be true (the truth says it ignored the limit).
            flagged = set(EvseResponsiveness.objects.filter(flagged=True).values_list("evse_key", flat=True))
            ignoring = set()
            for sid in Curtailment.objects.filter(activation_id=outcome.activation_id).values_list(
                    "session__session_id", flat=True):
                st = sim.session_truth(sid)  # the simulator reads ids without case
                if st is not None and st.evse_ignored_limit:
                    ignoring.add(evse_uid(st.point))
            assert flagged <= ignoring, f"flagged EVSEs that obeyed: {sorted(flagged - ignoring)}"
    assert not server_errors(caplog), server_errors(caplog)
