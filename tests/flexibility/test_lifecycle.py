"""The cap lifecycle: pending at the CSMS -> in force / refused / no result, one transition table,
the one retry rule, per-party sends, and the sweep redoing only what is known to be lost."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from flexibility import lifecycle, services, tasks
from flexibility.lifecycle import CAP_TRANSITIONS as TRANSITIONS
from flexibility.models import Activation, Curtailment, Signal
from flexibility.services import activations
from flexibility.summary import activation_summary, cap_states
from ocpi import services as ocpi_services
from ocpi.client import _clients
from ocpi.models import ChargingProfileCall, OcpiParty, Session, hash_token
from tests.conftest import T0
from tests.ocpi.loopback import LoopbackServer, ok

S = Curtailment.Status
SECOND = timedelta(seconds=1)
REDUCE = "reduce_consumption"


@pytest.fixture
def cpo():
    _clients.clear()
    with LoopbackServer() as server:
        server.route("PUT", "/cp/", lambda call: ok({"result": "ACCEPTED", "timeout": 30}))
        server.route("DELETE", "/cp/", lambda call: ok({"result": "ACCEPTED", "timeout": 30}))
        yield server
    _clients.clear()


def _party(cpo, name: str, party_id: str) -> OcpiParty:
    return OcpiParty.objects.create(
        name=name, country_code="NL", party_id=party_id, role="CPO", status=OcpiParty.Status.REGISTERED,
        token_ours_hash=hash_token(f"{name}-token"), token_theirs="scsp-token", versions_url=f"{cpo.url}/versions",
        endpoints=[{"identifier": "chargingprofiles", "role": "RECEIVER", "url": f"{cpo.url}/cp/"}],
    )


@pytest.fixture
def alice(db, cpo) -> OcpiParty:
    return _party(cpo, "Alice CPO", "ALI")


def _sessions(party: OcpiParty, n: int, prefix: str = "S", **extra) -> list[Session]:
    fields = {"status": "ACTIVE", "start_date_time": T0 - timedelta(hours=1), "kwh": 5.0, "last_updated": T0,
              "phases": 3, "phases_source": "reported", "last_current_a": 16.0, "current_source": "measured",
              "seen_at": T0, **extra}
    return Session.objects.bulk_create(
        Session(party=party, country_code="NL", ocpi_party_id=party.party_id, session_id=f"{prefix}{i}",
                location_id="L1", evse_uid=f"{prefix}E{i}", connector_id="1", **fields)
        for i in range(n)
    )


def _activation(brp, external_id: str = "a-1") -> Activation:
    signal = services.receive_signal(brp, external_id, REDUCE).signal
    Signal.objects.filter(pk=signal.pk).update(status=Signal.Status.RELAYED)
    return Activation.objects.create(signal=signal, relayed_at=T0, ends_at=T0.replace(minute=15))


def _set_call(cap: Curtailment) -> ChargingProfileCall:
    return ChargingProfileCall.objects.filter(purpose_id=cap.pk, kind="SET").latest("created_at")


def test_async_results_move_a_pending_cap_in_force_or_refused(cpo, alice, brp, clock):
    _sessions(alice, 2)
    activation = _activation(brp)
    assert activations.send_caps(activations.plan_activation(activation.pk)) == []
    first, second = Curtailment.objects.filter(activation=activation).order_by("pk")
    assert {first.status, second.status} == {S.PENDING}  # the sync ACCEPTED: can be forwarded, no more
    assert first.result_due_at == T0 + timedelta(seconds=30)  # the timeout the CPO gave
    assert first.before_a == 16.0  # the measured draw when planned: what delivery is judged against

    ocpi_services.record_profile_result(alice, _set_call(first).id, {"result": "ACCEPTED"})
    ocpi_services.record_profile_result(alice, _set_call(second).id, {"result": "REJECTED"})

    assert dict(Curtailment.objects.values_list("pk", "status")) == {first.pk: S.IN_FORCE, second.pk: S.REFUSED}
    states = cap_states(activation)
    assert (states[S.IN_FORCE], states[S.REFUSED], states[S.PENDING]) == (1, 1, 0)


def test_no_result_within_the_timeout_is_no_result_and_still_deleted(cpo, alice, brp, clock):
    _sessions(alice, 1)
    activation = _activation(brp)
    activations.send_caps(activations.plan_activation(activation.pk))
    clock.advance(29)
    assert activations.expire_pending() == 0
    clock.advance(1)
    assert activations.expire_pending() == 1
    cap = Curtailment.objects.get()
    assert cap.status == S.NO_RESULT
    clock.advance((activation.ends_at - clock.now()).total_seconds())
    assert activations.restore_activation(activation.pk)
    cap.refresh_from_db()
    assert (cap.status, cap.restored_from) == (S.RESTORED, S.NO_RESULT)
    assert [c.method for c in cpo.calls] == ["PUT", "DELETE"]
    assert activation_summary(Activation.objects.get(pk=activation.pk))["caps_by_state"][S.NO_RESULT] == 1


def test_a_result_for_a_restored_cap_changes_nothing(cpo, alice, brp, clock):
    _sessions(alice, 1)
    activation = _activation(brp)
    activations.send_caps(activations.plan_activation(activation.pk))
    clock.advance((activation.ends_at - T0).total_seconds())
    activations.restore_activation(activation.pk)
    cap = Curtailment.objects.get()
    call = _set_call(cap)

    with pytest.raises(ocpi_services.StaleResult) as caught:
        ocpi_services.record_profile_result(alice, call.id, {"result": "ACCEPTED"})
    assert caught.value.status_code == 2000 and "already cleared" in caught.value.message
    cap.refresh_from_db()
    call.refresh_from_db()
    assert (cap.status, cap.restored_from, call.result) == (S.RESTORED, S.PENDING, "")


@pytest.mark.parametrize("source", list(TRANSITIONS))
def test_every_move_follows_the_transition_table(db, alice, brp, source):
    sessions = _sessions(alice, len(TRANSITIONS))
    activation = _activation(brp)
    caps = Curtailment.objects.bulk_create(
        Curtailment(activation=activation, session=s, starts_at=T0, ends_at=T0 + timedelta(minutes=5), limit_a=8,
                    expected_kw=1, status=source) for s in sessions)
    for cap, target in zip(caps, TRANSITIONS, strict=True):
        moved = lifecycle.move_caps([cap.pk], target)
        cap.refresh_from_db()
        assert moved == (target in TRANSITIONS[source]), (source, target)
        assert cap.status == (target if moved else source)
        if moved and target == S.RESTORED:
            assert cap.restored_from == source


def test_final_states_never_move():
    assert TRANSITIONS[S.REFUSED] == frozenset() and TRANSITIONS[S.RESTORED] == frozenset()
    reachable = set(itertools.chain.from_iterable(TRANSITIONS.values()))
    assert reachable == set(S.values)  # every state is reachable, none is left out of the table


def test_the_one_backoff_grows_and_never_bursts(settings):
    settings.DISPATCH_RETRY_BASE_S, settings.DISPATCH_RETRY_MAX_S, settings.DISPATCH_MAX_RETRIES = 2.0, 60.0, 6
    delays = [activations.retry_delay_s(n) for n in range(1, 7)]
    assert delays == [2, 4, 8, 16, 32, 60]
    assert sum(delays[:5]) > 16  # never six tries within 16 s (the old 0.5..4 s ladder did exactly that)


def test_too_often_is_retried_later_and_refusals_never(cpo, alice, brp, clock):
    _sessions(alice, 3)
    answers = {"S0": "TOO_OFTEN", "S1": "NOT_SUPPORTED", "S2": "UNKNOWN_SESSION"}
    cpo.route("PUT", "/cp/", lambda call: ok({"result": answers[call.path.rsplit("/", 1)[1]], "timeout": 30}))
    activation = _activation(brp)
    retry = activations.send_caps(activations.plan_activation(activation.pk), attempt=2)
    statuses = dict(Curtailment.objects.values_list("session__session_id", "status"))
    assert statuses == {"S0": S.PLANNED, "S1": S.REFUSED, "S2": S.REFUSED}
    cap = Curtailment.objects.get(session__session_id="S0")
    assert retry == [cap.pk]
    assert cap.due_at == T0 + timedelta(seconds=8)  # attempt 3: 2 * 2**2


def test_a_send_still_running_is_never_doubled(cpo, alice, brp, clock, settings):
    settings.DISPATCH_CLAIM_LEASE_S = 9.0
    _sessions(alice, 1)
    activation = _activation(brp)
    ids = activations.plan_activation(activation.pk)
    Curtailment.objects.filter(pk__in=ids).update(status=S.SENT, due_at=T0 + 9 * SECOND)  # a live lease
    assert activations.lost_sends() == {}
    activations.send_caps(ids)  # a redelivered task while the first still runs: nothing sent
    assert cpo.calls == []
    clock.advance(10)
    assert activations.lost_sends() == {activation.pk: ids}  # the lease lapsed: that send is dead
    activations.send_caps(ids)
    assert [c.method for c in cpo.calls] == ["PUT"]


def test_the_lease_is_renewed_while_the_send_runs(cpo, alice, brp, clock, settings, transactional_db):
    """A PUT that takes 1.5 s with a 0.9 s lease: renewed every 0.3 s, so never seen as lost meanwhile."""
    settings.DISPATCH_CLAIM_LEASE_S = 0.9
    seen: list[dict] = []

    def slow_put(call):
        for _ in range(5):
            time.sleep(0.3)
            clock.advance(0.3)
            seen.append(activations.lost_sends())
        connection.close()  # the server thread's own connection
        return ok({"result": "ACCEPTED", "timeout": 30})

    cpo.route("PUT", "/cp/", slow_put)
    _sessions(alice, 1)
    activation = _activation(brp)
    activations.send_caps(activations.plan_activation(activation.pk))
    assert seen == [{}] * 5
    assert Curtailment.objects.get().status == S.PENDING


def test_each_partys_caps_go_in_their_own_task(cpo, alice, brp, clock):
    bob = _party(cpo, "Bob CPO", "BOB")
    _sessions(alice, 3, "A")
    _sessions(bob, 2, "B")
    activation = _activation(brp)
    ids = activations.plan_activation(activation.pk)
    chunks = activations.party_chunks(ids)
    parties = [set(Curtailment.objects.filter(pk__in=c).values_list("session__party_id", flat=True)) for c in chunks]
    assert sorted(len(c) for c in chunks) == [2, 3] and all(len(p) == 1 for p in parties)


def test_the_sweep_requeues_a_lost_retry(cpo, alice, brp, clock):
    _sessions(alice, 1)
    activation = _activation(brp)
    ids = activations.plan_activation(activation.pk)  # planned, its send task never reached the broker
    clock.advance(5)
    assert activations.lost_sends() == {}  # due, but within one sweep interval: maybe still in the queue
    clock.advance(10)
    tasks.sweep()  # eager Celery in unit tests: the requeued send runs inline
    assert Curtailment.objects.get(pk=ids[0]).status == S.PENDING
    assert [c.method for c in cpo.calls] == ["PUT"]


def test_the_sweep_caps_a_session_whose_enqueue_was_lost(cpo, alice, brp, clock):
    """The lost-enqueue sweep: a session that started during an ACTIVE activation and whose
    throttle_new_sessions never reached the broker is planned and capped by the sweep."""
    _sessions(alice, 1)
    activation = _activation(brp)
    activations.send_caps(activations.plan_activation(activation.pk))
    activations.mark_dispatched(activation.pk)
    assert Activation.objects.get(pk=activation.pk).status == Activation.Status.ACTIVE
    clock.advance(60)
    [late] = _sessions(alice, 1, "LATE", start_date_time=clock.now(), first_active_at=clock.now(),
                       seen_at=clock.now(), last_updated=clock.now())
    assert activations.uncapped_new_sessions() == {activation.pk: [late.pk]}
    tasks.sweep()
    cap = Curtailment.objects.get(session=late)
    assert cap.status == S.PENDING and cap.activation_id == activation.pk
    assert activations.uncapped_new_sessions() == {}


def test_sessions_started_enqueue_goes_through_the_broker_safe_path(monkeypatch, db, caplog,
                                                                    django_capture_on_commit_callbacks):
    def broker_down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(tasks.throttle_new_sessions, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.on_sessions_started(sender=Session, session_ids=[1, 2])  # logged, not raised
    assert "could not queue flexibility.throttle_new_sessions" in caplog.text


@hyp_settings(max_examples=200, deadline=None)
@given(base=st.floats(min_value=0.1, max_value=10), cap=st.floats(min_value=1, max_value=300),
       attempt=st.integers(min_value=1, max_value=20))
def test_backoff_grows_and_is_bounded(base, cap, attempt):
    with override_settings(DISPATCH_RETRY_BASE_S=base, DISPATCH_RETRY_MAX_S=max(cap, base)):
        delays = [activations.retry_delay_s(n) for n in range(attempt, attempt + 6)]
    assert delays == sorted(delays) and max(delays) <= max(cap, base)
    assert delays[0] >= min(base, max(cap, base))


def test_a_late_result_for_a_failed_cap_of_a_restored_activation_changes_nothing(cpo, alice, brp, clock):
    _sessions(alice, 1)
    cpo.route("PUT", "/cp/", lambda call: ok(None, 3000, 503))
    activation = _activation(brp)
    activations.send_caps(activations.plan_activation(activation.pk))
    clock.advance((activation.ends_at - T0).total_seconds())
    activations.restore_activation(activation.pk)
    cap = Curtailment.objects.get()
    assert cap.status == S.FAILED
    with pytest.raises(ocpi_services.StaleResult):
        ocpi_services.record_profile_result(alice, _set_call(cap).id, {"result": "ACCEPTED"})
    cap.refresh_from_db()
    assert cap.status == S.FAILED


def test_an_accepted_result_for_a_put_we_gave_up_on_puts_the_cap_in_force(cpo, alice, brp, clock):
    """While the activation runs, a PUT that timed out for us but reached the CSMS is in force:
    it counts against the budget and gets its DELETE at the end."""
    _sessions(alice, 1)
    cpo.route("PUT", "/cp/", lambda call: ok(None, 3000, 503))
    activation = _activation(brp)
    ids = activations.plan_activation(activation.pk)
    activations.send_caps(ids)
    lifecycle.give_up_caps(ids)
    cap = Curtailment.objects.get()
    assert cap.status == S.FAILED
    ocpi_services.record_profile_result(alice, _set_call(cap).id, {"result": "ACCEPTED"})
    cap.refresh_from_db()
    assert cap.status == S.IN_FORCE
    clock.advance((activation.ends_at - T0).total_seconds())
    activations.restore_activation(activation.pk)
    cap.refresh_from_db()
    assert (cap.status, cap.restored_from) == (S.RESTORED, S.IN_FORCE)
    assert [c.method for c in cpo.calls][-1] == "DELETE"


def test_the_restore_stores_the_figures_the_summary_would_count(cpo, alice, brp, clock):
    """Two caps accepted, each shedding (16 A - 8 A) x 3 phases x 230 V = 5.52 kW, one refused: the
    stored dispatched_kw is the accepted pair's, and the stored figures are what a recount gives."""
    _sessions(alice, 3)
    cpo.route("PUT", "/cp/", lambda call: ok({"result": "REJECTED" if call.path.endswith("/S2") else "ACCEPTED",
                                               "timeout": 30}))
    activation = _activation(brp)
    activations.send_caps(activations.plan_activation(activation.pk))
    clock.advance((activation.ends_at - T0).total_seconds())
    assert activations.restore_activation(activation.pk)

    restored = Activation.objects.get(pk=activation.pk)
    kw_each = Curtailment.objects.filter(activation=activation).values_list("expected_kw", flat=True).first()
    assert restored.dispatched_kw == pytest.approx(2 * kw_each) and kw_each == pytest.approx(5.52)
    assert restored.caps_by_state == {"pending": 2, "in_force": 0, "refused": 1, "no_result": 0, "failed": 0,
                                      "unsent": 0}
    stored = activation_summary(restored)
    Activation.objects.filter(pk=activation.pk).update(caps_by_state=None)  # forget them: counted again
    assert activation_summary(Activation.objects.get(pk=activation.pk)) == stored
