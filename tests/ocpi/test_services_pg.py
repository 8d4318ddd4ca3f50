"""Concurrent pushes on a real PostgreSQL: the first PUT of a session raced from many threads."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from ocpi import services
from ocpi.models import Session, SessionState

from .conftest import session_payload


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_racing_first_puts_create_one_session(real_services, party):
    barrier, errors = threading.Barrier(8), []

    def push(n: int) -> None:
        try:
            barrier.wait()
            payload = session_payload(kwh=float(n), last_updated=f"2025-05-06T17:05:{n:02d}Z")
            services.receive_session(party, "NL", "CPO", "S1", payload, partial=False)
        except Exception as exc:  # collected: a thread's failure must fail the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=push, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    session = Session.objects.get()
    assert SessionState.objects.count() == 8
    assert session.kwh == 7.0  # the newest last_updated wins whatever the arrival order
