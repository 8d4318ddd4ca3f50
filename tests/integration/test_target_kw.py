"""Target-kW activation on the simulator: a target of half the preview is met by the true shed, and
by the product's own measured shed, with about half the sessions touched (issue 16, "Done means").

Real PostgreSQL, Redis, a Celery worker and the simulator over HTTP, on standard data (kWh only,
phases unknown). The shed is judged by the simulator's truth (counterfactual minus actual fleet
power once the top-ups have settled), not only by the product's own figures. Run with -s for them.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import Count

from flexibility import services
from flexibility.models import Activation, Brp, Curtailment
from flexibility.services import activations
from ocpi.models import Session
from smatch import clock

from .conftest import registered_simulator, wait_for

pytestmark = pytest.mark.services

# No margin here: the selection counts the best estimate (the figure the preview and the target are
# stated in) and none of these EVSEs refuse or ignore caps (what TARGET_MARGIN, 15 % by default, is
# for). With phases unknown that estimate is a weighed guess per session (8 A frees 1.84 kW a phase):
# over the first seconds the true shed ran -15 %..+5 % of the target; the caps measured as freeing
# less than their estimate are what the top-up covers (states every 20 s here, so within a minute).
WORKER = {"TARGET_MARGIN": "0.0", "SWEEP_INTERVAL_S": "1", "DELIVERY_GRACE_S": "8"}
STATE_INTERVAL_S = 20
ACTIVATION_S = 120
SETTLED_S = 70  # caps judged (grace + a full kWh interval under the cap) and the top-ups in force


@pytest.mark.parametrize("worker_extra_env", [WORKER])
def test_half_the_preview_is_met_by_true_shed_with_about_half_the_sessions(celery_worker_process, live_server,
                                                                           settings):
    with registered_simulator(live_server.url, settings, points=400, state_interval_s=STATE_INTERVAL_S) as sim:
        # A session's draw is known from its second state on (kWh only): wait until (nearly) every one
        # has two, so the preview holds the whole fleet and one car's shed (up to 5.5 kW) is small
        # against half of it.
        wait_for(lambda: Session.objects.filter(status="ACTIVE").annotate(n=Count("states"))
                 .filter(n__lt=2).count() <= 2, 90, "two states of every active session")
        wait_for(lambda: len(activations.preview().caps) >= 20, 60,
                 f"at least 20 eligible sessions (now: {activations.preview().skipped})")
        preview = activations.preview()
        target_kw = round(preview.expected_kw / 2, 1)
        brp, _ = services.create_brp("target BRP", Brp.Policy.AUTO)
        signal = services.receive_signal(brp, "half-1", "reduce_consumption", target_kw=target_kw,
                                          end_time=clock.now() + timedelta(seconds=ACTIVATION_S)).signal
        activation = wait_for(lambda: Activation.objects.filter(signal=signal).exclude(status="dispatching")
                              .first(), 30, "the relay")
        wait_for(lambda: Activation.objects.get(pk=activation.pk).status == Activation.Status.RESTORED,
                 ACTIVATION_S + 60, "the restore")
        activation.refresh_from_db()
        t0, t1 = activation.relayed_at + timedelta(seconds=SETTLED_S), activation.ends_at
        true_shed = float(sim.counterfactual_truth().power_kw(t0, t1).mean() - sim.truth().power_kw(t0, t1).mean())
        caps = Curtailment.objects.filter(activation=activation)
        touched = caps.count()
        topped_up = caps.filter(starts_at__gt=activation.relayed_at + timedelta(seconds=5)).count()
        print(f"\npreview {len(preview.caps)} eligible, {preview.expected_kw:.1f}-{preview.expected_kw_high:.1f} kW; "
              f"target {target_kw} kW; capped {touched} ({touched / len(preview.caps):.0%}, {topped_up} by top-up); "
              f"expected {activation.expected_kw:.1f} kW, measured {activation.measured_kw or 0:.1f} kW, "
              f"true shed {true_shed:.1f} kW ({true_shed / target_kw - 1:+.1%} of the target), "
              f"shortfall {activation.shortfall_kw}")
        assert activation.target_kw == target_kw and activation.shortfall_kw == 0.0
        # The bar: the target met within 15 % by the shed the product measured (what it reports
        # to the BRP), from the states under the caps.
        assert activation.measured_kw is not None
        assert abs(activation.measured_kw / target_kw - 1) <= 0.15
        # And by the simulator's truth. Measured with this test (-s) on 6 December 2026, after the
        # top-up counted measured shed: +12.6 % (three runs), +11.8 %. The truth runs above the measured
        # figure: the best estimate of a kWh-only session of unknown phases is low for one-phase cars on
        # three-phase connectors (12.5 A on one phase: 1.03 kW freed, 0.82 estimated), and the kWh
        # states under a cap lag the draw (docs/driver_impact.md). Guarded with room for a fleet drawn
        # at another hour of the day: never less than the 15 % band, never more than 30 % over.
        assert 0.85 * target_kw <= true_shed <= 1.30 * target_kw
        # "About half": the fair order starts with the longest plugged-in, often finishing their charge
        # just above 8 A; those within the delivery judge's tolerance of the cap (1.5 A, 0.5 kW) come
        # last, but the rest still shed less than the average: half the kW took 56-66 % of the
        # sessions (docs/driver_impact.md).
        assert 0.3 <= touched / len(preview.caps) <= 0.70
