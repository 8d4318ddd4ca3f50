"""Sessions Receiver: PUT / PATCH / GET, out-of-order updates, duplicates, bad input, session_started."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ocpi.models import Connector, Session, SessionState
from ocpi.signals import session_started

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


def test_far_future_last_updated_is_2001_and_freezes_nothing(ocpi, party, settings, clock):
    settings.OCPI_MAX_FUTURE_S = 300
    assert ocpi("PUT", PATH, session_payload()).status_code == 201
    ahead = (clock.now() + timedelta(seconds=301)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = ocpi("PATCH", PATH, {"status": "COMPLETED", "last_updated": ahead})
    assert response.envelope["status_code"] == 2001 and "ahead of our clock" in response.envelope["status_message"]
    # The rightful next update still lands.
    ocpi("PATCH", PATH, {"kwh": 2.0, "last_updated": "2025-05-06T17:06:00Z"})
    assert (Session.objects.get().status, Session.objects.get().kwh) == ("ACTIVE", 2.0)
    near = (clock.now() + timedelta(seconds=200)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ocpi("PATCH", PATH, {"kwh": 2.5, "last_updated": near}).envelope["status_code"] == 1000


def energy_period(minute: int, kwh: float) -> dict:
    return {"start_date_time": f"2025-05-06T17:{minute:02d}:00Z", "dimensions": [{"type": "ENERGY", "volume": kwh}]}


def test_charging_periods_follow_the_patch_rule_and_come_back_on_get(ocpi, party):
    ocpi("PUT", PATH, session_payload(charging_periods=[energy_period(0, 0.5)]))
    ocpi("PATCH", PATH, {"charging_periods": [energy_period(3, 0.4)], "last_updated": "2025-05-06T17:06:00Z"})
    # Re-delivered unchanged: stored once.
    ocpi("PATCH", PATH, {"charging_periods": [energy_period(3, 0.4)], "last_updated": "2025-05-06T17:06:00Z"})
    got = ocpi("GET", PATH).envelope["data"]["charging_periods"]
    assert [p["start_date_time"] for p in got] == ["2025-05-06T17:00:00Z", "2025-05-06T17:03:00Z"]


def test_a_patch_with_an_overlapping_period_stores_nothing(ocpi, party):
    ocpi("PUT", PATH, session_payload(charging_periods=[energy_period(0, 0.5), energy_period(3, 0.4)]))
    response = ocpi("PATCH", PATH, {"kwh": 9.0, "last_updated": "2025-05-06T17:08:00Z",
                                    "charging_periods": [energy_period(0, 0.9), energy_period(6, 0.2)]})
    assert response.envelope["status_code"] == 2001
    assert "overlaps a closed stored period" in response.envelope["status_message"]
    session = Session.objects.get()
    assert session.kwh == 1.5 and len(session.charging_periods) == 2 and SessionState.objects.count() == 1


def test_kwh_only_session_gets_a_current_from_its_second_state(ocpi, party):
    """A standard CPO: kwh and ENERGY periods only. 0.92 kWh in 5 min = 11.04 kW; unknown phases are
    converted on the one assumption (3): 11040 / (3 x 230) = 16 A, marked "assumed"."""
    ocpi("PUT", PATH, session_payload(x_phase_currents_a=..., kwh=0.58, last_updated="2025-05-06T17:00:00Z"))
    first = Session.objects.get()
    assert (first.last_current_a, first.current_source) == (None, "")  # one state: the draw is unknown
    ocpi("PATCH", PATH, {"kwh": 1.5, "last_updated": "2025-05-06T17:05:00Z"})
    session = Session.objects.get()
    assert session.last_power_kw == pytest.approx(11.04)
    assert session.last_current_a == pytest.approx(16.0) and session.current_source == "assumed"
    state = SessionState.objects.order_by("timestamp").last()
    assert (state.current_source, state.power_kw) == ("assumed", pytest.approx(11.04))


def test_connector_phases_bound_a_new_session(ocpi, party):
    Connector.objects.create(party=party, country_code="NL", ocpi_party_id="CPO", location_id="l1", evse_uid="e1",
                             connector_id="1", power_type="AC_1_PHASE", max_amperage_a=32.0,
                             max_electric_power_w=7360.0, last_updated=at(0))
    ocpi("PUT", PATH, session_payload(x_phase_currents_a=..., kwh=0.0, last_updated="2025-05-06T17:00:00Z"))
    ocpi("PATCH", PATH, {"kwh": 0.46, "last_updated": "2025-05-06T17:05:00Z"})
    session = Session.objects.get()
    # One phase for sure: 0.46 kWh in 5 min = 5.52 kW = 24 A on that phase, measured from kWh.
    assert (session.phases, session.phases_source, session.max_current_a, session.max_power_kw) == (
        1, "connector", 32.0, 7.36)
    assert session.current_source == "kwh" and session.last_current_a == pytest.approx(24.0)


def test_a_patch_without_kwh_keeps_the_known_draw(ocpi, party):
    ocpi("PUT", PATH, session_payload(x_phase_currents_a=..., x_phases=3, kwh=0.58,
                                      last_updated="2025-05-06T17:00:00Z"))
    ocpi("PATCH", PATH, {"kwh": 1.5, "last_updated": "2025-05-06T17:05:00Z"})  # 11.04 kW = 16 A on 3 phases
    ocpi("PATCH", PATH, {"status": "ACTIVE", "last_updated": "2025-05-06T17:05:10Z"})  # a status-only PATCH
    session = Session.objects.get()
    assert (session.last_current_a, session.current_source) == (pytest.approx(16.0), "kwh")
    assert SessionState.objects.order_by("timestamp").last().current_source == ""  # that state itself: unknown
