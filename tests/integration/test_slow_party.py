"""A slow party hurts only itself (issue #11): one CPO answers each PUT after 40 s, another at once.

Real PostgreSQL, Redis and a Celery worker process; two CPO platforms over HTTP on loopback. The
healthy CPO's PUTs must all be answered within its normal time and its restore DELETEs must go
out on time, whatever the slow one does. Figures are printed (run with -s).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from flexibility import services
from flexibility.models import Activation, Curtailment
from ocpi.models import ChargingProfileCall, OcpiParty, Session, hash_token
from smatch import clock
from tests.ocpi.loopback import LoopbackServer, ok

from .conftest import wait_for

pytestmark = pytest.mark.services

SESSIONS_PER_CPO = 20
SLOW_S = 40.0


class Cpo:
    """A CPO platform on loopback answering PUTs after `delay_s`; records when each call arrived."""

    def __init__(self, name: str, party_id: str, delay_s: float) -> None:
        self.name, self.party_id, self.delay_s = name, party_id, delay_s
        self.server = LoopbackServer()
        self.arrivals: list[tuple[str, float]] = []
        self.release = threading.Event()
        self.server.route("PUT", "/cp/", self._put)
        self.server.route("DELETE", "/cp/", self._delete)

    def _put(self, call):
        self.arrivals.append(("PUT", time.time()))
        self.release.wait(self.delay_s)
        return ok({"result": "ACCEPTED", "timeout": 30})

    def _delete(self, call):
        self.arrivals.append(("DELETE", time.time()))
        return ok({"result": "ACCEPTED", "timeout": 30})

    def register(self) -> OcpiParty:
        party = OcpiParty.objects.create(
            name=self.name, country_code="NL", party_id=self.party_id, role="CPO", status="REGISTERED",
            token_ours_hash=hash_token(f"{self.name}-token"), token_theirs="scsp-token",
            versions_url=f"{self.server.url}/versions",
            endpoints=[{"identifier": "chargingprofiles", "role": "RECEIVER", "url": f"{self.server.url}/cp/"}])
        now = clock.now()
        Session.objects.bulk_create(
            Session(party=party, country_code="NL", ocpi_party_id=self.party_id, session_id=f"{self.party_id}-{i}",
                    location_id="L1", evse_uid=f"{self.party_id}-E{i}", connector_id="1", status="ACTIVE",
                    start_date_time=now - timedelta(hours=1), kwh=5.0, last_updated=now, seen_at=now, phases=3,
                    phases_source="reported", last_current_a=16.0, current_source="measured")
            for i in range(SESSIONS_PER_CPO))
        return party

    def times(self, method: str) -> list[float]:
        return [t for m, t in self.arrivals if m == method]


@pytest.fixture
def cpos():
    healthy, slow = Cpo("Healthy CPO", "HEA", 0.0), Cpo("Slow CPO", "SLO", SLOW_S)
    with healthy.server, slow.server:
        yield healthy, slow
        slow.release.set()


def test_a_slow_cpo_does_not_delay_a_healthy_one(celery_worker_process, cpos):
    healthy, slow = cpos
    brp, _ = services.create_brp("Supplier on the system clock")  # the worker runs on the real clock
    healthy_party, slow_party = healthy.register(), slow.register()
    end = clock.now() + timedelta(seconds=30)
    signal = services.receive_signal(brp, "slow-party-1", "reduce_consumption", end_time=end).signal
    activation = services.relay_signal(signal.pk)
    relayed = activation.relayed_at.timestamp()

    healthy_calls = ChargingProfileCall.objects.filter(session__party=healthy_party, kind="SET")
    wait_for(lambda: healthy_calls.filter(answered_at__isnull=False).count() == SESSIONS_PER_CPO, 20,
             "the healthy CPO's PUTs answered")
    last_answer = max(c.answered_at for c in healthy_calls).timestamp() - relayed
    healthy_caps = Curtailment.objects.filter(activation=activation, session__party=healthy_party)
    assert set(healthy_caps.values_list("status", flat=True)) == {Curtailment.Status.PENDING}

    wait_for(lambda: Activation.objects.get(pk=activation.pk).status == Activation.Status.RESTORED, 60,
             "the restore")
    deletes = healthy.times("DELETE")
    assert len(deletes) == SESSIONS_PER_CPO
    restore_late = max(deletes) - activation.ends_at.timestamp()
    slow_puts = len(slow.times("PUT"))
    print(f"\nhealthy: last PUT answered {last_answer:.2f} s after relay, last DELETE {restore_late:+.2f} s "
          f"after the end; slow: {slow_puts} PUT attempts, caps "
          f"{dict(Curtailment.objects.filter(session__party=slow_party).values_list('session__session_id', 'status'))}")
    assert last_answer < 3.0
    assert -0.5 < restore_late < 3.0
    # The slow CPO's own caps were cut at the total deadline and retried with backoff, never doubled.
    assert all(status in (Curtailment.Status.FAILED, Curtailment.Status.RESTORED)
               for status in Curtailment.objects.filter(session__party=slow_party).values_list("status", flat=True))
