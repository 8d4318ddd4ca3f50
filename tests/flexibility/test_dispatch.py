"""Dispatch against a CPO on loopback: outcomes, retries, and the race between a PUT and the restore."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection

from flexibility import services
from flexibility.models import Activation, Curtailment, Signal
from flexibility.services import activations
from ocpi.client import _clients
from ocpi.models import OcpiParty, Session, hash_token
from tests.conftest import T0
from tests.ocpi.loopback import LoopbackServer, ok

REDUCE = "reduce_consumption"


@pytest.fixture
def cpo():
    _clients.clear()
    with LoopbackServer() as server:
        yield server
    _clients.clear()


@pytest.fixture
def cpo_party(transactional_db, cpo) -> OcpiParty:
    return OcpiParty.objects.create(
        name="Loopback CPO", country_code="NL", party_id="CPO", role="CPO", status=OcpiParty.Status.REGISTERED,
        token_ours_hash=hash_token("cpo-token"), token_theirs="scsp-token", versions_url=f"{cpo.url}/versions",
        endpoints=[{"identifier": "chargingprofiles", "role": "RECEIVER", "url": f"{cpo.url}/cp/"}],
    )


def _sessions(party: OcpiParty, n: int) -> list[Session]:
    return Session.objects.bulk_create(
        Session(party=party, country_code="NL", ocpi_party_id="CPO", session_id=f"S{i}", location_id="L1",
                evse_uid=f"E{i}", connector_id="1", status="ACTIVE", start_date_time=T0 - timedelta(hours=1),
                kwh=5.0, last_updated=T0, phases=3, last_current_a=16.0)
        for i in range(n)
    )


def _planned_activation(brp) -> tuple[Activation, list[int]]:
    """A relayed signal's activation with its caps planned; the test drives each later step."""
    signal = services.receive_signal(brp, "race-1", REDUCE).signal
    Signal.objects.filter(pk=signal.pk).update(status=Signal.Status.RELAYED)
    activation = Activation.objects.create(signal=signal, relayed_at=T0, ends_at=T0.replace(minute=15))
    return activation, activations.plan_activation(activation.pk)


def test_accepted_refused_and_transient_answers_are_recorded(
    cpo, cpo_party, brp
):
    _sessions(cpo_party, 3)
    answers = {"S0": "ACCEPTED", "S1": "REJECTED", "S2": "TOO_OFTEN"}
    cpo.route("PUT", "/cp/", lambda call: ok({"result": answers[call.path.rsplit("/", 1)[1]], "timeout": 30}))
    activation, pending = _planned_activation(brp)

    retry = activations.send_caps(pending)

    by_session = dict(Curtailment.objects.filter(activation=activation).values_list("session__session_id", "status"))
    assert by_session == {"S0": "pending", "S1": "refused", "S2": "planned"}  # sync ACCEPTED: not yet in force
    assert retry == list(Curtailment.objects.filter(session__session_id="S2").values_list("pk", flat=True))
    activations.mark_dispatched(activation.pk)
    assert Activation.objects.get(pk=activation.pk).status == Activation.Status.DISPATCHING  # S2 still to send


def test_a_restore_during_the_put_still_deletes_the_profile(
    cpo, cpo_party, brp, clock
):
    """The CPO accepts the PUT only after the activation ended and the restore ran: the late
    ACCEPTED must not overwrite the restore, and the profile must be DELETEd, not left in force."""
    _sessions(cpo_party, 1)
    activation, pending = _planned_activation(brp)
    restored = threading.Event()

    def put_answered_after_the_restore(call):
        clock.advance((activation.ends_at - T0).total_seconds())
        try:
            activations.restore_activation(activation.pk)  # the restore task, on another connection
        finally:
            connection.close()
        restored.set()
        return ok({"result": "ACCEPTED", "timeout": 30})

    cpo.route("PUT", "/cp/", put_answered_after_the_restore)
    cpo.route("DELETE", "/cp/", lambda call: ok({"result": "ACCEPTED", "timeout": 30}))

    assert activations.send_caps(pending) == []

    assert restored.is_set()
    cap = Curtailment.objects.get(activation=activation)
    assert cap.status == Curtailment.Status.RESTORED
    assert [c.method for c in cpo.calls] == ["PUT", "DELETE"]
    assert Activation.objects.get(pk=activation.pk).status == Activation.Status.RESTORED


def test_the_outcome_tells_a_late_dispatch_from_an_empty_fleet(brp, clock):
    from flexibility.summary import activation_summary

    activation, pending = _planned_activation(brp)  # planned: nothing eligible, skips counted
    assert pending == []
    Activation.objects.filter(pk=activation.pk).update(status=Activation.Status.RESTORED)
    assert activation_summary(Activation.objects.get(pk=activation.pk))["outcome"] == "no_sessions"

    Activation.objects.filter(pk=activation.pk).update(skipped={})  # the dispatch never ran before the end
    assert activation_summary(Activation.objects.get(pk=activation.pk))["outcome"] == "not_dispatched"
