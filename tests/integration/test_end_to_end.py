"""Signal -> relay -> the simulator's sessions at 8 A -> restored: real worker, Redis, PostgreSQL, OCPI."""

from datetime import timedelta

import pytest

from flexibility import services
from flexibility.models import Activation, Brp, Curtailment, Signal
from ocpi.models import ChargingProfileCall
from smatch import clock

from .conftest import registered_simulator, wait_for

pytestmark = pytest.mark.services


@pytest.fixture
def simulator(celery_worker_process, live_server, settings):
    with registered_simulator(live_server.url, settings) as sim:
        yield sim


def capped(sim) -> set[str]:
    """Session ids the simulator's EVSEs hold at 8 A, upper-cased: session ids are CiStrings, and a
    CPO may spell them in another case in its bodies than we store (issue #10)."""
    return {s.upper() for s in sim.ongoing_session_ids() if sim.limit_in_force_a(s) == 8.0}


def test_relay_caps_simulator_sessions_and_restores_them(simulator):
    auto, _ = services.create_brp("auto BRP", Brp.Policy.AUTO)
    end = clock.now() + timedelta(seconds=15)
    signal = services.receive_signal(auto, "e2e-1", "reduce_consumption", end_time=end).signal
    activation = wait_for(lambda: Activation.objects.filter(signal=signal, status="active").first(), 30,
                          "dispatch")
    accepted = {sid.upper() for sid in Curtailment.objects.filter(
        activation=activation, status__in=("pending", "in_force")).values_list("session__session_id", flat=True)}
    assert accepted, f"no session was capped: skipped {activation.skipped}"
    wait_for(lambda: accepted <= capped(simulator), 10, "the simulator to apply the 8 A profiles")
    wait_for(lambda: Signal.objects.get(pk=signal.pk).status == Signal.Status.RESTORED, 40, "restore")
    assert not capped(simulator)
    results = ChargingProfileCall.objects.filter(kind="SET", purpose_id__in=Curtailment.objects.filter(
        activation=activation).values("pk"))
    wait_for(lambda: not results.filter(response_result="ACCEPTED", result="").exists(), 10, "async results")
    assert set(results.values_list("result", flat=True)) == {"ACCEPTED"}


def test_veto_sends_nothing(simulator, operator):
    brp, _ = services.create_brp("manual BRP")
    signal = services.receive_signal(brp, "e2e-veto", "reduce_consumption").signal
    services.veto_signal(signal.pk, operator, "not today")
    with pytest.raises(services.SignalRefused):
        services.relay_signal(signal.pk, actor=operator)
    assert not ChargingProfileCall.objects.exists()
    assert not capped(simulator)


def test_cancel_restores_at_once(simulator):
    auto, _ = services.create_brp("auto BRP", Brp.Policy.AUTO)
    end = clock.now() + timedelta(minutes=5)
    signal = services.receive_signal(auto, "e2e-cancel", "reduce_consumption", end_time=end).signal
    wait_for(lambda: Activation.objects.filter(signal=signal, status="active").exists(), 30, "dispatch")
    wait_for(lambda: capped(simulator), 10, "caps in force")
    services.end_early(signal.pk, label="brp:test", cancel=True)
    wait_for(lambda: Activation.objects.filter(signal=signal, status="restored").exists(), 20, "restore")
    assert clock.now() < end - timedelta(minutes=4)
    wait_for(lambda: not capped(simulator), 10, "the simulator to drop the profiles")
    assert Signal.objects.get(pk=signal.pk).status == Signal.Status.CANCELLED


def test_a_killed_worker_still_leaves_every_session_restored_by_the_deadline(simulator, celery_worker_process):
    auto, _ = services.create_brp("auto BRP", Brp.Policy.AUTO)
    end = clock.now() + timedelta(seconds=20)
    signal = services.receive_signal(auto, "e2e-crash", "reduce_consumption", end_time=end).signal
    wait_for(lambda: Activation.objects.filter(signal=signal, status="active").exists(), 30, "dispatch")
    wait_for(lambda: capped(simulator), 10, "caps in force")
    celery_worker_process.kill()  # SIGKILL: the scheduled restore dies with it
    # The profile's own start_date_time + duration make the CSMS fall back by the deadline.
    wait_for(lambda: clock.now() > end + timedelta(seconds=2), 40, "the deadline")
    assert not capped(simulator)
    celery_worker_process.start()  # a fresh worker's sweep closes the activation
    wait_for(lambda: Signal.objects.get(pk=signal.pk).status == Signal.Status.RESTORED, 30, "the sweep")
    caps = Curtailment.objects.filter(activation__signal=signal)
    # Caps in force were restored by the deadline; a cap planned for a session that started while the
    # worker was dead was never sent, and is recorded failed (never in force), not restored.
    outcomes = dict(caps.values_list("pk", "status"))
    assert set(outcomes.values()) <= {"restored", "failed"}, outcomes
    restored = caps.filter(status="restored").values_list("restored_at", flat=True)
    assert restored and all(r is not None and r <= end + timedelta(seconds=1) for r in restored), list(restored)
    assert not caps.filter(status="failed", attempts__gt=0, response="ACCEPTED").exists()
