"""Delivery proven by measurement against the simulator's truth (issue #10 item 8).

Real PostgreSQL, Redis, a Celery worker and the simulator over HTTP; a share of its EVSEs answer
ACCEPTED and keep drawing (`non_responding_share`). After one activation the sweep judges each cap
from the states that follow; the verdicts are compared with which EVSEs truly ignored the limit.
Figures are printed (run with -s) and cited in docs/dispatch.md.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import Count

from flexibility import services
from flexibility.models import Activation, Brp, Curtailment, EvseResponsiveness
from ocpi import services as ocpi
from ocpi.models import Session, SessionState
from simulator.config import Faults, SimConfig, with_knobs
from simulator.server import SimulatorServer
from smatch import clock
from smatch.clock import SystemClock

from .conftest import wait_for

pytestmark = pytest.mark.services

FAST_JUDGING = {"DELIVERY_GRACE_S": "8", "DELIVERY_RESUME_WINDOW_S": "15", "RESPONSIVENESS_FAILURES_N": "1",
                "RESPONSIVENESS_WINDOW_M": "1", "SWEEP_INTERVAL_S": "1"}


@pytest.mark.parametrize("worker_extra_env", [FAST_JUDGING])
@pytest.mark.parametrize("no_current_share", [0.0, 1.0], ids=["currents", "no-currents"])
def test_verdicts_match_the_simulators_truth(celery_worker_process, live_server, settings, no_current_share):
    settings.OCPI_BASE_URL = f"{live_server.url}/ocpi"
    now = clock.now().replace(microsecond=0)
    # Pinned to the `extension` profile: per-phase currents (x_ fields) against none at all.
    config = with_knobs(SimConfig(points=120, seed=11, start=now - timedelta(minutes=20), duration_s=3600,
                                  state_interval_s=4, state_jitter_s=1, complete_when_full_share=0.0,
                                  early_unplug_share=0.0,
                                  faults=Faults(non_responding_share=0.2, no_current_share=no_current_share)),
                        "extension")
    sim = SimulatorServer(config, SystemClock())
    url = sim.start_in_thread()
    try:
        party = ocpi.register_with(f"{url}/versions", sim.token_a, name="simulator")
        ocpi.pull_sessions(party)
        brp, _ = services.create_brp("auto BRP delivery", Brp.Policy.AUTO)
        signal = services.receive_signal(brp, "delivery-1", "reduce_consumption",
                                         end_time=clock.now() + timedelta(seconds=40)).signal
        activation = wait_for(lambda: Activation.objects.filter(signal=signal).first(), 30, "the relay")
        caps = Curtailment.objects.filter(activation=activation)
        wait_for(lambda: Activation.objects.get(pk=activation.pk).status == Activation.Status.RESTORED, 90,
                 "the restore")
        judged = caps.exclude(restored_from__in=("", "sent")).exclude(status__in=("refused", "failed"))
        wait_for(lambda: judged.exists() and not judged.filter(delivery="").exists(), 60, "every cap judged")

        fleet = sim.fleet
        truth = {}
        for cap in judged.select_related("session"):
            index = sim.call(lambda sid=cap.session.session_id: fleet.session_index(sid))
            point = int(fleet.pop.point[index])
            truth[cap.pk] = (bool(fleet.responsive[point]), cap.delivery, cap.session.evse_uid)
        verdicts = [(ok, d) for ok, d, _ in truth.values() if d != "no_data"]
        right = sum(1 for ok, d in verdicts if (d == "responded") == ok)
        ignoring = {evse for ok, _, evse in truth.values() if not ok}
        # A cap planned on a draw already within the cap's tolerance proves nothing (no data): its
        # EVSE cannot be flagged from this activation, so recall counts the EVSEs with a verdict.
        judgeable = {evse for ok, d, evse in truth.values() if not ok and d != "no_data"}
        flagged = set(EvseResponsiveness.objects.filter(flagged=True).values_list("evse_uid", flat=True))
        precision = len(flagged & ignoring) / len(flagged) if flagged else 1.0
        recall = len(flagged & judgeable) / len(judgeable) if judgeable else 1.0
        no_data = sum(1 for _, d, _ in truth.values() if d == "no_data")
        print(f"\ncaps judged {len(truth)}, with data {len(verdicts)}, right {right} "
              f"({right / max(1, len(verdicts)):.1%}), no data {no_data}; EVSEs ignoring the cap {len(ignoring)} "
              f"({len(judgeable)} with a verdict), flagged {len(flagged)}: precision {precision:.2f}, recall "
              f"{recall:.2f} of those with a verdict, {len(flagged & ignoring) / max(1, len(ignoring)):.2f} of all; "
              f"sessions {Session.objects.count()}; state sources "
              f"{dict(SessionState.objects.values_list('current_source').annotate(n=Count('pk')))}")
        assert len(verdicts) >= 10, "too few caps to judge"
        assert right / len(verdicts) >= 0.95
        assert precision >= 0.95 and recall >= 0.9
    finally:
        sim.stop()
