"""Signal intake, policies, relay / veto / cancel and the audit trail (no OCPI traffic here)."""

from datetime import timedelta

import pytest

from flexibility import services
from flexibility.error_codes import FlexibilityErrorCode as Code
from flexibility.models import Activation, Brp, Decision, Signal
from flexibility.services import signals
from smatch.celery import app
from tests.conftest import T0

REDUCE = "reduce_consumption"


def test_a_signal_is_stored_and_waits_for_the_operator(brp, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        intake = services.receive_signal(brp, "brp-1", REDUCE)
    assert intake.created and intake.signal.status == Signal.Status.RECEIVED
    assert intake.signal.received_at == T0
    assert queued == []  # manual policy: nothing happens until an operator decides


def test_the_same_id_is_the_same_signal(brp):
    first = services.receive_signal(brp, "brp-1", REDUCE)
    again = services.receive_signal(brp, "brp-1", REDUCE)
    assert not again.created and again.signal.pk == first.signal.pk
    assert Signal.objects.count() == 1


def test_the_same_id_with_other_content_is_a_conflict(brp):
    services.receive_signal(brp, "brp-1", REDUCE)
    with pytest.raises(services.SignalConflict) as refused:
        services.receive_signal(brp, "brp-1", REDUCE, end_time=T0 + timedelta(minutes=5))
    assert refused.value.code == Code.EXTERNAL_ID_REUSED


def test_two_brps_may_use_the_same_id(brp, other_brp):
    services.receive_signal(brp, "x", REDUCE)
    services.receive_signal(other_brp, "x", REDUCE)
    assert Signal.objects.count() == 2


@pytest.mark.parametrize(
    ("direction", "end", "isp", "code"),
    [
        ("increase_consumption", None, None, Code.DIRECTION_NOT_ACTIONABLE),
        (REDUCE, T0 - timedelta(seconds=1), None, Code.END_TIME_OUT_OF_RANGE),
        (REDUCE, T0 + timedelta(minutes=16), None, Code.END_TIME_OUT_OF_RANGE),
        (REDUCE, None, T0, Code.ISP_START_NOT_A_BOUNDARY),
    ],
)
def test_bad_signals_are_refused_and_nothing_is_stored(brp, direction, end, isp, code):
    with pytest.raises(services.SignalRefused) as refused:
        services.receive_signal(brp, "bad", direction, end_time=end, isp_start=isp)
    assert refused.value.code == code
    assert not Signal.objects.exists()


def test_relay_opens_an_activation_until_the_isp_boundary(brp, operator, django_capture_on_commit_callbacks):
    signal = services.receive_signal(brp, "brp-1", REDUCE).signal
    with django_capture_on_commit_callbacks() as queued:
        activation = services.relay_signal(signal.pk, actor=operator)
    assert activation.relayed_at == T0 and activation.ends_at == T0.replace(minute=15)
    assert len(queued) == 1  # the dispatch task, after commit
    signal.refresh_from_db()
    assert signal.status == Signal.Status.RELAYED
    decision = Decision.objects.get(signal=signal)
    assert (decision.action, decision.actor, decision.actor_label) == ("relay", operator, operator.username)


def test_relay_twice_is_refused(brp, operator, django_capture_on_commit_callbacks):
    signal = services.receive_signal(brp, "brp-1", REDUCE).signal
    with django_capture_on_commit_callbacks():
        services.relay_signal(signal.pk, actor=operator)
    with pytest.raises(services.SignalConflict) as refused:
        services.relay_signal(signal.pk, actor=operator)
    assert refused.value.code == Code.SIGNAL_ALREADY_DECIDED
    assert Activation.objects.count() == 1


def test_veto_needs_a_reason_and_blocks_relay(brp, operator):
    signal = services.receive_signal(brp, "brp-1", REDUCE).signal
    with pytest.raises(services.SignalRefused) as refused:
        services.veto_signal(signal.pk, operator, "  ")
    assert refused.value.code == Code.VETO_NEEDS_REASON
    services.veto_signal(signal.pk, operator, "grid maintenance in Rotterdam-Zuid")
    with pytest.raises(services.SignalConflict) as refused:
        services.relay_signal(signal.pk, actor=operator)
    assert refused.value.code == Code.SIGNAL_ALREADY_DECIDED
    assert not Activation.objects.exists()
    assert Decision.objects.get().reason == "grid maintenance in Rotterdam-Zuid"


def test_a_signal_past_its_end_expires_instead_of_relaying(brp, operator, clock):
    signal = services.receive_signal(brp, "brp-1", REDUCE).signal  # received 17:04, ISP ends 17:15
    clock.advance(11 * 60)
    with pytest.raises(services.SignalConflict) as refused:
        services.relay_signal(signal.pk, actor=operator)
    assert refused.value.code == Code.SIGNAL_EXPIRED
    signal.refresh_from_db()
    assert signal.status == Signal.Status.EXPIRED


def test_sweep_expires_overdue_signals(brp, clock):
    services.receive_signal(brp, "old", REDUCE)
    clock.advance(10 * 60)
    assert services.expire_overdue_signals() == 0
    clock.advance(60)
    assert services.expire_overdue_signals() == 1
    assert Signal.objects.get().status == Signal.Status.EXPIRED


def test_auto_policy_relays_on_arrival(db, clock, django_capture_on_commit_callbacks):
    auto, _ = services.create_brp("auto BRP", Brp.Policy.AUTO)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        signal = services.receive_signal(auto, "a-1", REDUCE).signal
    assert len(queued) == 1
    assert services.relay_if_due(signal.pk) is not None
    assert Decision.objects.get().actor_label == "policy"


def test_auto_after_policy_waits_unless_vetoed(db, clock, operator):
    delayed, _ = services.create_brp("patient BRP", Brp.Policy.AUTO_AFTER, 60)
    signal = services.receive_signal(delayed, "d-1", REDUCE).signal
    assert signal.auto_relay_at == T0 + timedelta(seconds=60)
    assert services.due_policy_relays() == []
    services.veto_signal(signal.pk, operator, "not now")
    clock.advance(61)
    assert services.due_policy_relays() == []
    assert services.relay_if_due(signal.pk) is None  # the late countdown finds it vetoed


def test_cancel_before_relay(brp):
    signal = services.receive_signal(brp, "brp-1", REDUCE).signal
    services.end_early(signal.pk, label="brp:test", cancel=True)
    signal.refresh_from_db()
    assert signal.status == Signal.Status.CANCELLED
    with pytest.raises(services.SignalConflict) as refused:
        services.end_early(signal.pk, label="brp:test", cancel=True)
    assert refused.value.code == Code.NOTHING_TO_END


@pytest.mark.parametrize(
    ("text", "expected"),
    [("manual", ("manual", None)), ("auto", ("auto", None)), ("auto-after=90", ("auto_after", 90))],
)
def test_policy_syntax(text, expected):
    assert services.parse_policy(text) == expected


@pytest.mark.parametrize("text", ["sometimes", "auto-after=", "auto-after=-5", "auto-after=x"])
def test_bad_policy_syntax(text):
    with pytest.raises(services.BrpRefused) as refused:
        services.parse_policy(text)
    assert refused.value.code == Code.POLICY_INVALID


def test_the_preview_shows_the_shed_range_and_where_the_draw_came_from(brp, operator, client):
    signal = services.receive_signal(brp, "preview-1", "reduce_consumption").signal
    client.force_login(operator)
    page = client.get(f"/admin/flexibility/signal/{signal.pk}/change/").content.decode()
    assert "0 sessions eligible, expected shed 0.0 kW (0.0-0.0) (draw measured 0 / from POWER 0 / from kWh 0" in page
    assert "skipped: none" in page


def test_every_task_the_services_queue_by_name_is_registered():
    names = (signals.RELAY_BY_POLICY, signals.DISPATCH_ACTIVATION, signals.RESTORE_ACTIVATION)
    assert all(name in app.tasks for name in names)
