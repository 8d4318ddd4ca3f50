"""`update_from_values`: the join-based bulk UPDATE of the dispatch path, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import OperationalError, connection

from ocpi.models import ChargingProfileCall, OcpiParty, Session
from smatch.db import update_from_values
from tests.conftest import T0


@pytest.fixture
def calls(db) -> list[ChargingProfileCall]:
    party = OcpiParty.objects.create(name="CPO", country_code="NL", party_id="CPO", role="CPO")
    session = Session.objects.create(
        party=party, country_code="NL", ocpi_party_id="CPO", session_id="S1", location_id="L", evse_uid="E",
        connector_id="1", status="ACTIVE", start_date_time=T0, kwh=0, last_updated=T0,
    )
    return ChargingProfileCall.objects.bulk_create(
        ChargingProfileCall(id=uuid.uuid4(), session=session, kind="SET", http_status=500, error="old")
        for _ in range(5)
    )


def test_each_row_gets_its_own_values_and_increments(calls):
    rows = [
        {"pk": c.id, "http_status": 200 + i, "answered_at": T0 + timedelta(seconds=i),
         "response_timeout_s": None if i % 2 else 30, "error": f"e{i}", "result_payload": {"n": i}}
        for i, c in enumerate(calls[:4])
    ]
    updated = update_from_values(
        ChargingProfileCall, rows, ["http_status", "answered_at", "response_timeout_s", "error", "result_payload"],
        increment=["attempts"], batch_size=3,  # two batches: 3 + 1
    )
    assert updated == 4
    got = {c.id: c for c in ChargingProfileCall.objects.all()}
    for i, c in enumerate(calls[:4]):
        row = got[c.id]
        assert (row.http_status, row.answered_at, row.error, row.attempts) == (200 + i, T0 + timedelta(seconds=i),
                                                                               f"e{i}", 1)
        assert row.response_timeout_s == (None if i % 2 else 30)
        assert row.result_payload == {"n": i}
    untouched = got[calls[4].id]
    assert (untouched.http_status, untouched.error, untouched.attempts) == (500, "old", 0)


def test_unknown_keys_and_empty_input_change_nothing(calls):
    assert update_from_values(ChargingProfileCall, [], ["error"]) == 0
    assert update_from_values(ChargingProfileCall, [{"pk": uuid.uuid4(), "error": "x"}], ["error"]) == 0
    assert set(ChargingProfileCall.objects.values_list("error", flat=True)) == {"old"}


@pytest.mark.services
def test_two_updates_of_the_same_rows_in_opposite_orders_never_deadlock(real_services, transactional_db):
    """The fan-out writing its PUT answers and a batch of async results over the same calls, at once:
    each gives its rows in its own order. Both must finish (PostgreSQL detects a deadlock and kills one
    of them, which lost a chunk's answers before the rows were locked in key order)."""
    party = OcpiParty.objects.create(name="CPO", country_code="NL", party_id="CPO", role="CPO")
    session = Session.objects.create(
        party=party, country_code="NL", ocpi_party_id="CPO", session_id="S1", location_id="L", evse_uid="E",
        connector_id="1", status="ACTIVE", start_date_time=T0, kwh=0, last_updated=T0,
    )
    ids = [c.id for c in ChargingProfileCall.objects.bulk_create(
        ChargingProfileCall(id=uuid.uuid4(), session=session, kind="SET") for _ in range(400))]
    errors: list[Exception] = []
    rounds = 30
    barrier = threading.Barrier(2)

    def writer(batch_size: int, seed: int) -> None:
        order = list(ids)
        try:
            for n in range(rounds):
                random.Random(seed * 1000 + n).shuffle(order)  # arrival order: unrelated to the table's
                barrier.wait(timeout=30)
                update_from_values(ChargingProfileCall, [{"pk": i, "error": f"{seed}:{n}"} for i in order], ["error"],
                                   increment=["attempts"], batch_size=batch_size)
        except OperationalError as exc:
            errors.append(exc)
            barrier.abort()
        except threading.BrokenBarrierError:
            pass
        finally:
            connection.close()

    # One chunk's answers in one statement, against results written a few at a time.
    threads = [threading.Thread(target=writer, args=(2000, 1)), threading.Thread(target=writer, args=(16, 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert set(ChargingProfileCall.objects.values_list("attempts", flat=True)) == {2 * rounds}
