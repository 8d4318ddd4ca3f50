"""Sessions Receiver: PUT / PATCH / GET, out-of-order updates, duplicates, bad input, session_started."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ocpi_client.models import Session, SessionState
from ocpi_client.signals import session_started

from .conftest import session_payload

PATH = "2.2.1/sessions/NL/CPO/S1"


def at(minute: int, second: int = 0) -> datetime:
    return datetime(2025, 5, 6, 17, minute, second, tzinfo=UTC)


@pytest.fixture
def started():
    seen: list[list[int]] = []

    def listener(sender, session_ids, **kwargs):
        seen.append(list(session_ids))

    session_started.connect(listener)
    yield seen
    session_started.disconnect(listener)


def test_put_creates_then_updates(ocpi, party):
    assert ocpi("PUT", PATH, session_payload()).status_code == 201
    response = ocpi("PUT", PATH, session_payload(kwh=2.5, last_updated="2025-05-06T17:10:00Z"))
    assert response.status_code == 200
    session = Session.objects.get()
    key = (session.party, session.country_code, session.ocpi_party_id, session.session_id)
    assert key == (party, "NL", "CPO", "S1")
    assert session.kwh == 2.5 and session.status == "ACTIVE"
    assert session.last_updated == at(10)
    assert session.phases == 3 and session.last_current_a == 16.2
    states = list(session.states.order_by("timestamp").values_list("timestamp", "kwh", "current_l3_a"))
    assert states == [(at(5), 1.5, 16.2), (at(10), 2.5, 16.2)]


def test_patch_updates_only_given_fields_and_adds_a_state(ocpi, party):
    ocpi("PUT", PATH, session_payload())
    response = ocpi("PATCH", PATH, {"kwh": 3.0, "last_updated": "2025-05-06T17:10:00Z",
                                    "x_phase_currents_a": [8.0, None, 0]})
    assert response.status_code == 200 and response.envelope["status_code"] == 1000
    session = Session.objects.get()
    assert session.kwh == 3.0 and session.evse_uid == "E1" and session.status == "ACTIVE"
    assert session.phases == 1 and session.last_current_a == 8.0
    state = session.states.get(timestamp=at(10))
    assert (state.kwh, state.current_l1_a, state.current_l2_a, state.current_l3_a, state.phases) == (
        3.0, 8.0, None, 0.0, 1)


def test_patch_without_last_updated_is_refused(ocpi, party):
    ocpi("PUT", PATH, session_payload())
    response = ocpi("PATCH", PATH, {"kwh": 3.0})
    assert response.envelope["status_code"] == 2001
    assert "last_updated" in response.envelope["status_message"]
    assert Session.objects.get().kwh == 1.5


def test_patch_of_unknown_session_is_404_and_stores_nothing(ocpi, party):
    response = ocpi("PATCH", PATH, {"kwh": 3.0, "last_updated": "2025-05-06T17:10:00Z"})
    assert response.status_code == 404
    assert response.envelope["status_code"] == 2000
    assert not Session.objects.exists() and not SessionState.objects.exists()


def test_older_update_keeps_newer_fields_but_joins_history(ocpi, party):
    ocpi("PUT", PATH, session_payload(kwh=4.0, last_updated="2025-05-06T17:20:00Z", status="COMPLETED"))
    response = ocpi("PATCH", PATH, {"kwh": 2.0, "status": "ACTIVE", "last_updated": "2025-05-06T17:10:00Z"})
    assert response.status_code == 200
    session = Session.objects.get()
    assert (session.kwh, session.status, session.last_updated) == (4.0, "COMPLETED", at(20))
    assert list(session.states.order_by("timestamp").values_list("kwh", "status")) == [
        (2.0, "ACTIVE"), (4.0, "COMPLETED")]


def test_late_patch_without_kwh_takes_the_state_before_it(ocpi, party):
    ocpi("PUT", PATH, session_payload(kwh=1.0, last_updated="2025-05-06T17:05:00Z"))
    ocpi("PATCH", PATH, {"kwh": 5.0, "last_updated": "2025-05-06T17:25:00Z"})
    ocpi("PATCH", PATH, {"x_phase_currents_a": [10, 10, 10], "last_updated": "2025-05-06T17:15:00Z"})
    state = SessionState.objects.get(timestamp=at(15))
    assert (state.kwh, state.current_l1_a) == (1.0, 10.0)
    assert Session.objects.get().kwh == 5.0


def test_duplicate_update_is_stored_once(ocpi, party):
    for _ in range(3):
        assert ocpi("PUT", PATH, session_payload()).envelope["status_code"] == 1000
    assert SessionState.objects.count() == 1
    assert Session.objects.count() == 1


def test_get_returns_the_stored_object(ocpi, party):
    ocpi("PUT", PATH, session_payload(end_date_time="2025-05-06T17:30:00Z"))
    data = ocpi("GET", PATH).envelope["data"]
    assert data["id"] == "S1" and data["kwh"] == 1.5 and data["currency"] == "EUR"
    assert data["cdr_token"]["uid"] == "T1" and data["end_date_time"] == "2025-05-06T17:30:00Z"
    assert ocpi("GET", "2.2.1/sessions/NL/CPO/nope").status_code == 404


def test_path_of_another_party_is_404(ocpi, party):
    response = ocpi("PUT", "2.2.1/sessions/DE/XYZ/S1", session_payload(country_code="DE", party_id="XYZ"))
    assert response.status_code == 404
    assert not Session.objects.exists()


@pytest.mark.parametrize(("overrides", "message"), [
    ({"kwh": -0.1}, "kwh: must be >= 0"),
    ({"kwh": "1.5"}, "kwh: expected a number"),
    ({"kwh": True}, "kwh: expected a number"),
    ({"status": "CHARGING"}, "status: must be one of"),
    ({"start_date_time": "yesterday"}, "start_date_time: expected an RFC 3339"),
    ({"last_updated": "2025-13-40T99:00:00Z"}, "last_updated: not a valid date"),
    ({"evse_uid": "E" * 37}, "evse_uid: at most 36 characters"),
    ({"location_id": "L\n1"}, "location_id: only printable ASCII"),
    ({"cdr_token": ...}, "cdr_token: required field missing"),
    ({"id": "S2"}, "id: 'S2' in the body differs"),
    ({"x_phase_currents_a": [16, 16]}, "x_phase_currents_a: expected [l1, l2, l3]"),
    ({"x_phase_currents_a": [16, -1, 16]}, "x_phase_currents_a[1]: must be >= 0"),
    ({"charging_periods": [{"start_date_time": "2025-05-06T17:00:00Z", "dimensions": []}]},
     "dimensions: expected a non-empty list"),
])
def test_invalid_session_is_2001_and_stores_nothing(ocpi, party, overrides, message):
    response = ocpi("PUT", PATH, session_payload(**overrides))
    # Valid JSON that reached the OCPI layer: HTTP 200 with OCPI 2001 (status_codes.asciidoc).
    assert response.status_code == 200
    assert response.envelope["status_code"] == 2001
    assert message in response.envelope["status_message"]
    assert not Session.objects.exists() and not SessionState.objects.exists()


def test_body_that_is_not_an_object_is_2001(ocpi, party):
    response = ocpi("PUT", PATH, [1, 2])
    assert response.envelope["status_code"] == 2001


def test_session_id_longer_than_36_in_url_is_refused(ocpi, party):
    long_id = "S" * 37
    response = ocpi("PUT", f"2.2.1/sessions/NL/CPO/{long_id}", session_payload(id=long_id))
    assert response.envelope["status_code"] == 2001
    assert not Session.objects.exists()


def test_timestamps_without_designator_are_utc_and_offsets_are_converted(ocpi, party):
    ocpi("PUT", PATH, session_payload(start_date_time="2025-05-06T19:00:00+02:00",
                                      last_updated="2025-05-06T17:05:00.123456789"))
    session = Session.objects.get()
    assert session.start_date_time == at(0)
    assert session.last_updated == datetime(2025, 5, 6, 17, 5, 0, 123456, tzinfo=UTC)


def test_session_started_fires_once_after_commit(ocpi, party, started, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        ocpi("PUT", PATH, session_payload(status="PENDING", last_updated="2025-05-06T17:01:00Z"))
    assert started == []
    with django_capture_on_commit_callbacks(execute=True):
        ocpi("PATCH", PATH, {"status": "ACTIVE", "last_updated": "2025-05-06T17:02:00Z"})
        ocpi("PATCH", PATH, {"kwh": 2.0, "last_updated": "2025-05-06T17:07:00Z"})
    assert started == [[Session.objects.get().pk]]


def test_current_fallbacks_from_charging_periods(ocpi, party):
    periods = [
        {"start_date_time": "2025-05-06T17:00:00Z", "dimensions": [{"type": "CURRENT", "volume": 30}]},
        {"start_date_time": "2025-05-06T17:04:00Z", "dimensions": [{"type": "POWER", "volume": 6.9}]},
    ]
    ocpi("PUT", PATH, session_payload(x_phase_currents_a=..., x_phases=2, charging_periods=periods))
    state = SessionState.objects.get()
    # Latest period is POWER 6.9 kW over 2 phases at 230 V: 6900 / (230 * 2) = 15 A per phase.
    assert (state.current_l1_a, state.current_l2_a, state.current_l3_a) == (15.0, 15.0, None)
    assert state.power_kw == 6.9 and state.phases == 2
    assert Session.objects.get().last_current_a == 15.0
