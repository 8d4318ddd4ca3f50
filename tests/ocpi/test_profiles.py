"""ChargingProfiles through the one sending service: PUT / DELETE to a loopback CPO, async results, the retry rule."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from ocpi import services
from ocpi.client import ocpi_datetime, response_url_for
from ocpi.models import ActiveProfileUpdate, ChargingProfileCall, OcpiParty, Session, hash_token
from ocpi.services import ProfileTarget

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


def _target(session: Session, purpose_id: int = 7, ends_in_s: int = 660) -> ProfileTarget:
    return ProfileTarget(purpose_id=purpose_id, session_pk=session.pk, session_id=session.session_id,
                         party_pk=session.party_id, country_code=session.country_code,
                         ocpi_party_id=session.ocpi_party_id, ends_at=START + timedelta(seconds=ends_in_s), limit_a=8)


def test_set_and_clear_with_async_results(ours, party, cpo_server, sessions):
    def on_put(call):
        post_result_later(call.body["response_url"], {"result": "ACCEPTED"})
        return ok({"result": "ACCEPTED", "timeout": 30})

    def on_delete(call):
        post_result_later(call.query["response_url"], {"result": "ACCEPTED"})
        return ok({"result": "ACCEPTED", "timeout": 20})

    cpo_server.route("PUT", "/ocpi/2.2.1/cp/", on_put)
    cpo_server.route("DELETE", "/ocpi/2.2.1/cp/", on_delete)
    session = sessions[0]

    [put] = services.send_profiles([_target(session)], "SET", START)
    assert (put.purpose_id, put.disposition) == (7, "accepted")
    assert (put.outcome.http_status, put.outcome.ocpi_status_code, put.outcome.timeout_s) == (200, 1000, 30)
    sent = cpo_server.calls[-1]
    assert sent.path == "/ocpi/2.2.1/cp/S0"  # the advertised URL (trailing slash) + the session id
    assert sent.body == {"charging_profile": {
        "start_date_time": "2025-05-06T17:04:00Z", "duration": 660, "charging_rate_unit": "A",
        "charging_profile_period": [{"start_period": 0, "limit": 8.0}]},
        "response_url": f"{ours}/2.2.1/chargingprofiles/results/{put.call_id}"}
    assert sent.headers["Authorization"] == f"Token {b64(party.token_theirs)}"
    assert sent.headers["OCPI-to-party-id"] == "CPO" and sent.headers["OCPI-from-party-id"] == "SCS"

    [clear] = services.send_profiles([_target(session)], "CLEAR", START)
    assert (clear.disposition, clear.outcome.timeout_s) == ("accepted", 20)
    assert cpo_server.calls[-1].query == {"response_url": response_url_for(clear.call_id)}

    wait_for(lambda: ChargingProfileCall.objects.filter(result="ACCEPTED").count() == 2)
    row = ChargingProfileCall.objects.get(id=put.call_id)
    assert (row.kind, row.purpose_id, row.response_result, row.response_timeout_s, row.attempts) == (
        "SET", 7, "ACCEPTED", 30, 1)
    assert row.sent_at <= row.answered_at and row.result_at is not None
    assert row.result_payload == {"result": "ACCEPTED"}


def test_routing_headers_come_from_each_sessions_owner(party, cpo_server, sessions):
    """A hub forwards several CPOs: each PUT is addressed to its own session's owner."""
    cpo_server.route("PUT", "/ocpi/2.2.1/cp/", lambda call: ok({"result": "ACCEPTED", "timeout": 30}))
    other = Session.objects.create(
        party=party, country_code="de", ocpi_party_id="abc", session_id="Hub-1", location_id="L", evse_uid="E9",
        connector_id="1", status="ACTIVE", start_date_time=START, kwh=1.0, last_updated=START)
    services.send_profiles([_target(sessions[0], 1), _target(other, 2)], "SET", START)
    headers = {c.path.rsplit("/", 1)[1]: (c.headers["OCPI-to-country-code"], c.headers["OCPI-to-party-id"])
               for c in cpo_server.calls}
    assert headers == {"S0": ("NL", "CPO"), "Hub-1": ("de", "abc")}


def test_datetimes_we_send_have_seconds_or_milliseconds(party, cpo_server, sessions):
    cpo_server.route("PUT", "/ocpi/2.2.1/cp/", lambda call: ok({"result": "ACCEPTED", "timeout": 30}))
    services.send_profiles([_target(sessions[0])], "SET", START.replace(microsecond=123456))
    assert cpo_server.calls[-1].body["charging_profile"]["start_date_time"] == "2025-05-06T17:04:00.123Z"
    assert ocpi_datetime(START) == "2025-05-06T17:04:00Z"


def test_a_raw_token_party_gets_its_token_raw(party, cpo_server, sessions):
    OcpiParty.objects.filter(pk=party.pk).update(token_encoding="raw")
    cpo_server.route("PUT", "/ocpi/2.2.1/cp/", lambda call: ok({"result": "ACCEPTED", "timeout": 30}))
    services.send_profiles([_target(sessions[0])], "SET", START)
    assert cpo_server.calls[-1].headers["Authorization"] == f"Token {party.token_theirs}"


def post_result(ours: str, call_id, body, token: str = TOKEN) -> tuple[int, int]:
    """(HTTP status, OCPI status_code) of a result POSTed to our Sender interface."""
    response = requests.post(f"{ours}/2.2.1/chargingprofiles/results/{call_id}", json=body,
                             headers={"Authorization": f"Token {b64(token)}"}, timeout=10)
    return response.status_code, response.json()["status_code"]


def _call(session: Session) -> ChargingProfileCall:
    return ChargingProfileCall.objects.create(session=session, kind="SET")


def test_result_post_is_idempotent_and_unknown_ids_are_404(ours, party, sessions):
    call = _call(sessions[0])
    assert post_result(ours, call.id, {"result": "REJECTED"}) == (200, 1000)
    first = ChargingProfileCall.objects.get(id=call.id)
    assert post_result(ours, call.id, {"result": "REJECTED"}) == (200, 1000)
    again = ChargingProfileCall.objects.get(id=call.id)
    assert (again.result, again.result_at) == ("REJECTED", first.result_at)
    assert post_result(ours, uuid.uuid4(), {"result": "ACCEPTED"}) == (404, 2000)
    assert post_result(ours, "not-a-uuid", {"result": "ACCEPTED"}) == (404, 2000)
    assert post_result(ours, call.id, {"result": "MAYBE"})[1] == 2001


def test_result_of_another_partys_call_is_404(ours, party, sessions):
    OcpiParty.objects.create(name="other", country_code="DE", party_id="OTH", status="REGISTERED",
                             token_ours_hash=hash_token("other-token"))
    call = _call(sessions[0])
    assert post_result(ours, call.id, {"result": "ACCEPTED"}, token="other-token") == (404, 2000)
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


def test_fan_out_500_calls_with_their_dispositions(party, cpo_server, sessions, django_assert_max_num_queries):
    def on_put(call):
        n = int(call.path.rsplit("S", 1)[-1])
        if n % 50 == 0:
            return ok(None, 3000, 503)
        if n % 11 == 0:
            return ok({"result": "REJECTED", "timeout": 30})
        return ok({"result": "TOO_OFTEN" if n % 7 == 0 else "ACCEPTED", "timeout": 30})

    cpo_server.route("PUT", "/ocpi/2.2.1/cp/", on_put)
    many = Session.objects.bulk_create([Session(
        party=party, country_code="NL", ocpi_party_id="CPO", session_id=f"S{i}", location_id="L", evse_uid=f"E{i}",
        connector_id="1", status="ACTIVE", start_date_time=START, kwh=1.0, last_updated=START) for i in range(3, 500)])
    targets = [_target(s, i) for i, s in enumerate([*sessions, *many])]
    started = time.monotonic()
    with django_assert_max_num_queries(12):  # bulk insert + one join per 2,000 outcomes, never one per row
        sent = services.send_profiles(targets, "SET", START)
    elapsed = time.monotonic() - started
    assert [s.purpose_id for s in sent] == list(range(500))
    kinds = {i: ("retry" if i % 50 == 0 or (i % 7 == 0 and i % 11) else "refused" if i % 11 == 0 else "accepted")
             for i in range(500)}
    assert {s.purpose_id: s.disposition for s in sent} == kinds
    assert all(s.outcome.http_status == 503 for s in sent if s.purpose_id % 50 == 0)
    assert elapsed < 20, elapsed
    assert ChargingProfileCall.objects.filter(response_result="ACCEPTED", attempts=1).count() == list(
        kinds.values()).count("accepted")
    assert ChargingProfileCall.objects.filter(response_result="ERROR", http_status=503).count() == 10


@pytest.mark.parametrize(("answer", "disposition"), [
    (ok({"result": "ACCEPTED", "timeout": 30}), "accepted"),
    (ok({"result": "TOO_OFTEN", "timeout": 30}), "retry"),
    (ok(None, 3000, 502), "retry"),
    (ok(None, 2001, 400), "refused"),
    (ok(None, 2001, 200), "refused"),
    (ok({"result": "REJECTED", "timeout": 30}), "refused"),
    (ok({"result": "NOT_SUPPORTED", "timeout": 30}), "refused"),
    (ok({"result": "UNKNOWN_SESSION", "timeout": 30}), "refused"),
    (ok(None, 1000, 307, {"Location": "http://127.0.0.1:9/x"}), "refused"),
])
def test_one_retry_rule(party, cpo_server, sessions, answer, disposition):
    cpo_server.route("PUT", "/ocpi/2.2.1/cp/", lambda call: answer)
    [sent] = services.send_profiles([_target(sessions[0])], "SET", START)
    assert sent.disposition == disposition


def test_transport_failure_is_retried(party):
    OcpiParty.objects.filter(pk=party.pk).update(endpoints=[
        {"identifier": "chargingprofiles", "role": "RECEIVER", "url": "http://127.0.0.1:9/cp"}])
    session = Session.objects.create(
        party=party, country_code="NL", ocpi_party_id="CPO", session_id="S1", location_id="L", evse_uid="E1",
        connector_id="1", status="ACTIVE", start_date_time=START, kwh=1.0, last_updated=START)
    [sent] = services.send_profiles([_target(session)], "SET", START)
    assert (sent.outcome.result, sent.outcome.http_status, sent.disposition) == ("ERROR", None, "retry")
    assert sent.outcome.error == "connection failed"


def test_session_payload_helper_is_valid(ocpi, party):
    assert ocpi("PUT", "2.2.1/sessions/NL/CPO/S1", session_payload()).status_code == 201


def test_no_call_goes_to_a_party_that_is_not_registered(party, cpo_server, sessions):
    OcpiParty.objects.filter(pk=party.pk).update(status=OcpiParty.Status.REVOKED)
    cpo_server.route("DELETE", "/ocpi/2.2.1/cp/", lambda call: ok({"result": "ACCEPTED", "timeout": 30}))
    [sent] = services.send_profiles([_target(sessions[0])], "CLEAR", START)
    assert (sent.disposition, sent.outcome.error) == ("refused", "refused by policy: party is not registered")
    assert cpo_server.calls == []
