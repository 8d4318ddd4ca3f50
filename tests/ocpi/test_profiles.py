"""ChargingProfiles: PUT / DELETE / GET to a loopback CPO, async results POSTed back to live_server, fan_out."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
import requests

from ocpi_client import services
from ocpi_client.client import OutboundCall, build_set_charging_profile, client_for, response_url_for
from ocpi_client.models import ActiveProfileUpdate, ChargingProfileCall, OcpiParty, Session, hash_token

from .conftest import TOKEN, b64, session_payload
from .loopback import ok

START = datetime(2025, 5, 6, 17, 4, tzinfo=UTC)


@pytest.fixture
def ours(live_server, settings):
    settings.OCPI_BASE_URL = f"{live_server.url}/ocpi"
    return settings.OCPI_BASE_URL


@pytest.fixture
def sessions(party) -> list[Session]:
    return [Session.objects.create(
        party=party, country_code="NL", ocpi_party_id="CPO", session_id=f"S{i}", location_id="L", evse_uid=f"E{i}",
        connector_id="1", status="ACTIVE", start_date_time=START, kwh=1.0, last_updated=START,
    ) for i in range(3)]


def post_result_later(response_url: str, body: dict) -> None:
    """Like a CPO: answer first, then POST the Charge Point's result to the response_url."""
    def post():
        time.sleep(0.05)
        requests.post(response_url, json=body, headers={"Authorization": f"Token {b64(TOKEN)}"}, timeout=10)
    threading.Thread(target=post, daemon=True).start()


def wait_for(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_put_delete_get_with_async_results(ours, party, cpo_server, sessions):
    def on_put(call):
        post_result_later(call.body["response_url"], {"result": "ACCEPTED"})
        return ok({"result": "ACCEPTED", "timeout": 30})

    def on_delete(call):
        post_result_later(call.query["response_url"], {"result": "ACCEPTED"})
        return ok({"result": "ACCEPTED", "timeout": 20})

    def on_get(call):
        profile = {"start_date_time": "2025-05-06T17:04:00Z", "charging_profile": {
            "charging_rate_unit": "A", "charging_profile_period": [{"start_period": 0, "limit": 8.0}]}}
        post_result_later(call.query["response_url"], {"result": "ACCEPTED", "profile": profile})
        return ok({"result": "ACCEPTED", "timeout": 10})

    cpo_server.route("PUT", "/ocpi/2.2.1/cp/", on_put)
    cpo_server.route("DELETE", "/ocpi/2.2.1/cp/", on_delete)
    cpo_server.route("GET", "/ocpi/2.2.1/cp/", on_get)
    session = sessions[0]
    put_call, clear_call, get_call = (services.create_profile_calls([session], kind, purpose_id=7)[0]
                                      for kind in ("SET", "CLEAR", "GET"))
    client = client_for(party)

    outcome = client.put_charging_profile("S0", build_set_charging_profile(put_call.id, 8, START, 660))
    assert (outcome.call_id, outcome.http_status, outcome.ocpi_status_code) == (put_call.id, 200, 1000)
    assert (outcome.result, outcome.timeout_s, outcome.error) == ("ACCEPTED", 30, "")
    sent = cpo_server.calls[-1]
    assert sent.path == "/ocpi/2.2.1/cp/S0"
    assert sent.body == {"charging_profile": {
        "start_date_time": "2025-05-06T17:04:00Z", "duration": 660, "charging_rate_unit": "A",
        "charging_profile_period": [{"start_period": 0, "limit": 8.0}]},
        "response_url": f"{ours}/2.2.1/chargingprofiles/results/{put_call.id}"}
    assert sent.headers["Authorization"] == f"Token {b64(party.token_theirs)}"
    assert sent.headers["OCPI-to-party-id"] == "CPO" and sent.headers["OCPI-from-party-id"] == "SCS"

    cleared = client.delete_charging_profile("S0", response_url_for(clear_call.id))
    assert (cleared.result, cleared.timeout_s) == ("ACCEPTED", 20)
    assert cpo_server.calls[-1].query == {"response_url": response_url_for(clear_call.id)}
    got = client.get_active_charging_profile("S0", 900, response_url_for(get_call.id))
    assert got.result == "ACCEPTED"
    assert cpo_server.calls[-1].query == {"duration": "900", "response_url": response_url_for(get_call.id)}

    services.record_outcomes([outcome, cleared, got])
    wait_for(lambda: ChargingProfileCall.objects.filter(result="ACCEPTED").count() == 3)
    put_call.refresh_from_db()
    assert (put_call.response_result, put_call.response_timeout_s, put_call.attempts) == ("ACCEPTED", 30, 1)
    assert put_call.sent_at <= put_call.answered_at and put_call.result_at is not None
    assert put_call.result_payload == {"result": "ACCEPTED"}
    assert ChargingProfileCall.objects.get(id=get_call.id).result_payload["profile"]["charging_profile"]


def post_result(ours: str, call_id, body, token: str = TOKEN) -> dict:
    return requests.post(f"{ours}/2.2.1/chargingprofiles/results/{call_id}", json=body,
                         headers={"Authorization": f"Token {b64(token)}"}, timeout=10).json()


def test_result_post_is_idempotent_and_unknown_ids_are_2003(ours, party, sessions):
    call = services.create_profile_calls([sessions[0]], "SET")[0]
    assert post_result(ours, call.id, {"result": "REJECTED"})["status_code"] == 1000
    first = ChargingProfileCall.objects.get(id=call.id)
    assert post_result(ours, call.id, {"result": "REJECTED"})["status_code"] == 1000
    again = ChargingProfileCall.objects.get(id=call.id)
    assert (again.result, again.result_at) == ("REJECTED", first.result_at)
    assert post_result(ours, uuid.uuid4(), {"result": "ACCEPTED"})["status_code"] == 2003
    assert post_result(ours, "not-a-uuid", {"result": "ACCEPTED"})["status_code"] == 2003
    assert post_result(ours, call.id, {"result": "MAYBE"})["status_code"] == 2001


def test_result_of_another_partys_call_is_2003(ours, party, sessions):
    OcpiParty.objects.create(name="other", country_code="DE", party_id="OTH", status="REGISTERED",
                             token_ours_hash=hash_token("other-token"))
    call = services.create_profile_calls([sessions[0]], "SET")[0]
    assert post_result(ours, call.id, {"result": "ACCEPTED"}, token="other-token")["status_code"] == 2003
    assert ChargingProfileCall.objects.get(id=call.id).result == ""


def test_active_profile_put_is_recorded(ocpi, party, sessions):
    body = {"start_date_time": "2025-05-06T17:04:00Z",
            "charging_profile": {"charging_rate_unit": "A", "charging_profile_period": [{"start_period": 0,
                                                                                         "limit": 8}]}}
    response = ocpi("PUT", "2.2.1/chargingprofiles/S1", body)
    assert response.status_code == 200 and response.envelope["status_code"] == 1000
    update = ActiveProfileUpdate.objects.get()
    assert update.session == sessions[1] and update.start_date_time == START
    assert ocpi("PUT", "2.2.1/chargingprofiles/NOPE", body).status_code == 404
    assert ocpi("PUT", "2.2.1/chargingprofiles/S1", {"start_date_time": "x"}).envelope["status_code"] == 2001


def test_fan_out_500_calls_and_bulk_record(party, cpo_server, sessions, django_assert_max_num_queries):
    def on_put(call):
        n = int(call.path.rsplit("S", 1)[-1])
        if n % 50 == 0:
            return ok(None, 3000, 503)
        return ok({"result": "TOO_OFTEN" if n % 7 == 0 else "ACCEPTED", "timeout": 30})

    cpo_server.route("PUT", "/ocpi/2.2.1/cp/", on_put)
    rows = services.create_profile_calls([sessions[i % 3] for i in range(500)], "SET", purpose_id=1)
    calls = [OutboundCall(row.id, "SET", f"S{i}", build_set_charging_profile(row.id, 8, START, 600))
             for i, row in enumerate(rows)]
    started = time.monotonic()
    outcomes = client_for(party).fan_out(calls, max_workers=32)
    elapsed = time.monotonic() - started
    assert [o.call_id for o in outcomes] == [c.call_id for c in calls]
    errors = [o for o in outcomes if o.result == "ERROR"]
    assert [o.error for o in errors if o.http_status != 503] == []
    assert len(errors) == 10 and all(o.http_status == 503 and o.is_transient for o in errors)
    too_often = [o for o in outcomes if o.result == "TOO_OFTEN"]
    assert len(too_often) == len([i for i in range(500) if i % 7 == 0 and i % 50 != 0])
    assert all(o.is_transient for o in too_often)
    assert not any(o.is_transient for o in outcomes if o.result == "ACCEPTED")
    assert elapsed < 20, elapsed
    with django_assert_max_num_queries(8):  # a few bulk batches (+ savepoint), never one per row
        assert services.record_outcomes(outcomes) == 500
    assert ChargingProfileCall.objects.filter(response_result="ACCEPTED", attempts=1).count() == 500 - 10 - len(
        too_often)
    assert ChargingProfileCall.objects.filter(response_result="ERROR", http_status=503).count() == 10


def test_transport_failure_is_transient_error(party):
    OcpiParty.objects.filter(pk=party.pk).update(endpoints=[
        {"identifier": "chargingprofiles", "role": "RECEIVER", "url": "http://127.0.0.1:9/cp"}])
    party.refresh_from_db()
    call_id = uuid.uuid4()
    outcome = client_for(party).put_charging_profile("S1", build_set_charging_profile(call_id, 8, START, 60))
    assert outcome.result == "ERROR" and outcome.http_status is None and outcome.is_transient
    assert "ConnectionError" in outcome.error


def test_session_payload_helper_is_valid(ocpi, party):
    assert ocpi("PUT", "2.2.1/sessions/NL/CPO/S1", session_payload()).status_code == 201
