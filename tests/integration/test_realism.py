"""The product against the CPO simulator's realism profiles and behaviours (issue #10, "Done means").

Real PostgreSQL, Redis, a Celery worker and the simulator over HTTP. Each run registers a simulator
with one realism profile and a group of behaviour knobs that do not interact, relays one short
activation and checks what a user needs, judged by the simulator's truth, never by what the product
believes:

- the sessions truly above 8 A per phase at the signal were capped (ids compared without case);
- every cap ended restored on time, and the simulator's EVSEs hold no limit afterwards;
- each cap's states are consistent with what the platform answered (results or none);
- the product answered no request with HTTP 500.

`test_standard_figures` measures the "Done means" figures on the `standard` profile (several
activations, 5 % of EVSEs ignoring limits); `bench/realism.py` reruns it for several seeds and
writes docs/realism.md. REALISM_SEED picks its seed, REALISM_STATE_INTERVAL_S the simulator's state
interval (default 5 s, to judge within seconds), REALISM_FIGURES (a path) receives its figures as
JSON before the targets are asserted.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

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
    shared machine. Production's fixed gunicorn threads do not have that problem."""
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
    preview_kw: tuple[float, float] = (0.0, 0.0)  # the preview's expected shed range just before the signal

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
    preview = activations.preview()  # the range the product shows; the activation stores its low end only
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
                   activation.skipped, (preview.expected_kw, preview.expected_kw_high))


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


# --- the "Done means" figures on the standard profile --------------------------------------------------

TARGETS = {"capped_share": 0.98, "shed_error": 0.15, "verdicts_right": 0.95, "precision": 0.95, "recall": 0.9}
FIGURE_ACTIVATIONS = 3  # the N-of-M rule (2 of 3 by default) needs at least N judged caps per EVSE


def judge_verdicts(sim) -> tuple[int, int, int, list]:
    """(right, with data, no data, the wrong ones) over every judged cap: responded iff its EVSE
    obeyed (truth). A wrong one is (session id, verdict, the EV's true phases)."""
    right = with_data = no_data = 0
    wrong = []
    for sid, delivery in Curtailment.objects.exclude(delivery="").values_list("session__session_id", "delivery"):
        if delivery == "no_data":
            no_data += 1
            continue
        st = sim.session_truth(sid)  # the simulator reads ids without case
        with_data += 1
        if (delivery == "responded") == (not st.evse_ignored_limit):
            right += 1
        else:
            wrong.append((sid, delivery, st.phases))
    return right, with_data, no_data, wrong


def figures(sim, outcomes: list[Outcome]) -> dict:
    above = sum(len(o.above) for o in outcomes)
    capped = sum(len(o.above & o.capped) for o in outcomes)
    expected = sum(o.expected_kw for o in outcomes)
    truth = sum(o.true_shed_kw for o in outcomes)
    errors = [(o.expected_kw - o.true_shed_kw) / o.true_shed_kw for o in outcomes if o.true_shed_kw > 0]
    low, high = (sum(o.preview_kw[i] for o in outcomes) for i in (0, 1))
    right, with_data, no_data, wrong = judge_verdicts(sim)
    # EVSEs that truly ignored a limit in at least N of their judged caps (a no-data verdict included:
    # the product not seeing it does not make the EVSE obey) are the ones the rule should flag.
    failures_n = int(os.environ.get("RESPONSIVENESS_FAILURES_N", "2"))
    ignored: dict[str, int] = {}
    for sid in Curtailment.objects.exclude(delivery="").values_list("session__session_id", flat=True):
        st = sim.session_truth(sid)  # the simulator reads ids without case
        if st.evse_ignored_limit:
            ignored[evse_uid(st.point)] = ignored.get(evse_uid(st.point), 0) + 1
    flaggable = {e for e, n in ignored.items() if n >= failures_n}
    flagged = {e.upper() for e in EvseResponsiveness.objects.filter(flagged=True).values_list("evse_uid", flat=True)}
    true_flags = {e for e in flagged if e in {i.upper() for i in ignored}}
    return {
        "activations": len(outcomes), "above": above, "capped": capped, "capped_share": capped / above if above else 0,
        "expected_kw": expected, "true_shed_kw": truth,
        "shed_error": abs(expected - truth) / truth if truth else float("inf"),
        "shed_error_range": [min(errors, default=0.0), max(errors, default=0.0)],
        "preview_low_kw": low, "preview_high_kw": high,
        "truth_in_preview_range": sum(o.preview_kw[0] <= o.true_shed_kw <= o.preview_kw[1] for o in outcomes),
        "verdicts": with_data, "verdicts_right": right / with_data if with_data else 0.0, "no_data": no_data,
        "wrong_verdicts": wrong, "not_flagged": sorted(flaggable - flagged),
        "evses_ignoring": len(ignored), "evses_flaggable": len(flaggable), "flagged": len(flagged),
        "precision": len(true_flags) / len(flagged) if flagged else 1.0,
        "recall": len(flagged & flaggable) / len(flaggable) if flaggable else 1.0,
        "skipped": [o.skipped for o in outcomes],
    }


# The figures are a benchmark (targets are judged by bench/, not by the test suite): bench/realism.py
# runs this once per seed with REALISM_FIGURES set and reports met or missed.
@pytest.mark.skipif(not os.environ.get("REALISM_FIGURES"), reason="a benchmark: python bench/realism.py")
@pytest.mark.parametrize("worker_extra_env", [FAST_JUDGING])
def test_standard_figures(celery_worker_process, live_server, settings):
    seed = int(os.environ.get("REALISM_SEED", "1"))
    interval_s = int(os.environ.get("REALISM_STATE_INTERVAL_S", "5"))  # a real CSMS: 60-900 s
    with simulator_for(live_server.url, settings, "standard", "non-responding=0.05", seed=seed, points=240,
                       state_interval_s=interval_s) as sim:
        brp, _ = services.create_brp("auto BRP figures", Brp.Policy.AUTO)
        outcomes = []
        for n in range(FIGURE_ACTIVATIONS):
            outcomes.append(run_activation(sim, brp, f"figures-{seed}-{n}", seconds=max(30, 4 * interval_s)))
            judged = Curtailment.objects.filter(activation_id=outcomes[-1].activation_id, status="restored")
            wait_for(lambda j=judged: not j.filter(delivery="").exists(), 60, "every cap judged")
        found = {"seed": seed, "state_interval_s": interval_s, **figures(sim, outcomes)}
    print("\n" + json.dumps(found))
    if out := os.environ.get("REALISM_FIGURES"):
        Path(out).write_text(json.dumps(found))
    assert found["capped_share"] >= TARGETS["capped_share"], found
    assert found["shed_error"] <= TARGETS["shed_error"], found
    assert found["verdicts_right"] >= TARGETS["verdicts_right"], found
    assert found["precision"] >= TARGETS["precision"] and found["recall"] >= TARGETS["recall"], found
