"""Bad input at the OCPI doors: hypothesis builds Session objects (valid and broken) and random JSON, and
pushes them to our receiver endpoints with a valid CPO token.

Oracle: the generator knows what it broke, so it knows the answer (docs/ocpi.md, status_codes.asciidoc):
a valid push is 1000 (PUT of a new session: HTTP 201); valid JSON with an invalid object is HTTP 200 with
2001; a PATCH of a session never PUT is 404 / 2000 (2003 is "unknown location"). Every answer is a
well-formed envelope, never a 5xx,
and a refused push leaves the database exactly as it was (no session, no state, no half update).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocpi.models import ActiveProfileUpdate, OcpiParty, Session, SessionState

from . import tally

MAX_EXAMPLES = 60
FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")

# --- strategies ---------------------------------------------------------------------------------------

ascii_id = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#%\\"),
                   min_size=1, max_size=36)
when = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 12, 31, 23, 59, 59))
# last_updated more than OCPI_MAX_FUTURE_S ahead of the (frozen) product clock is refused by design.
updated = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2025, 5, 6, 17, 0))


def stamp(moment: datetime) -> str:
    return moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


currents = st.lists(st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False)), min_size=3, max_size=3)
periods = st.lists(st.fixed_dictionaries({
    "start_date_time": when.map(stamp),
    "dimensions": st.lists(st.fixed_dictionaries({
        "type": st.sampled_from(["CURRENT", "POWER", "ENERGY", "MAX_CURRENT"]),
        "volume": st.floats(-1e9, 1e9, allow_nan=False)}), min_size=1, max_size=3),
}), max_size=3, unique_by=lambda period: period["start_date_time"])  # two periods cannot start together


@st.composite
def valid_session(draw, session_id: str) -> dict:
    """A complete Session that must be accepted: absurd but legal values included (kWh up to 1e12,
    timestamps from 1970 to 2100, 1e6 A currents)."""
    session = {
        "country_code": "NL", "party_id": "CPO", "id": session_id,
        "start_date_time": stamp(draw(when)), "kwh": draw(st.floats(0, 1e12, allow_nan=False)),
        "cdr_token": {"country_code": "NL", "party_id": "EMS", "uid": draw(ascii_id), "type": "RFID",
                      "contract_id": draw(ascii_id)},
        "auth_method": draw(st.sampled_from(["AUTH_REQUEST", "COMMAND", "WHITELIST"])),
        "location_id": draw(ascii_id), "evse_uid": draw(ascii_id), "connector_id": draw(ascii_id),
        "currency": "EUR", "status": draw(st.sampled_from(["ACTIVE", "COMPLETED", "INVALID", "PENDING",
                                                             "RESERVATION"])),
        "last_updated": stamp(draw(updated)),
    }
    if draw(st.booleans()):
        session["x_phase_currents_a"] = draw(currents)
    if draw(st.booleans()):
        session["x_phases"] = draw(st.integers(1, 3))
    if draw(st.booleans()):
        session["charging_periods"] = draw(periods)
    if draw(st.booleans()):
        session["end_date_time"] = stamp(draw(when))
    return session


# Values a field must refuse. Every required field, and every field we parse, gets one of them.
ABSURD = {
    "any": st.sampled_from([None, [], {}, True, "", 10**40, -1, 1.5e308]),
    "text": st.one_of(st.text(min_size=37, max_size=300),  # longer than CiString(36), unicode included
                      st.text(st.characters(min_codepoint=0x80), min_size=1, max_size=36),  # not ASCII
                      st.just("tab\tinside")),
    "time": st.sampled_from(["1970-01-01", "2100-13-01T00:00:00Z", "2025-02-30T10:00:00Z", "yesterday",
                             "2025-05-06T25:00:00Z", "2025-05-06 17:00:00", "99999-01-01T00:00:00Z", "0"]),
    "number": st.sampled_from([-1e-9, -1, -1e308, "12", "NaN", [1.0], {"kwh": 1}]),
}
BREAKABLE = {  # field -> kinds of absurd value that must be refused
    "country_code": ("any", "text"), "party_id": ("any", "text"), "id": ("any", "text"),
    "start_date_time": ("any", "time"), "kwh": ("number",), "cdr_token": ("any",), "auth_method": ("any", "text"),
    "location_id": ("any", "text"), "evse_uid": ("any", "text"), "connector_id": ("any", "text"),
    "currency": ("any", "text"), "status": ("any", "text"), "last_updated": ("any", "time"),
    "end_date_time": ("time",), "x_phase_currents_a": ("number",), "x_phases": ("number",),
    "charging_periods": ("number",),
}


@st.composite
def broken_session(draw, session_id: str, partial: bool) -> tuple[dict, str]:
    """A Session with one field missing or absurd: (body, what was broken). A PATCH (`partial`) may
    leave any field but last_updated out or null, so there the null becomes an empty list."""
    session = draw(valid_session(session_id))
    field = draw(st.sampled_from(sorted(BREAKABLE)))
    kind = draw(st.sampled_from(BREAKABLE[field]))
    value = draw(ABSURD[kind])
    if field == "x_phase_currents_a":
        value = [16.0, value, 16.0] if not isinstance(value, list) else value
    if value is None and (partial or field == "end_date_time"):
        value = []
    optional = ("end_date_time", "x_phase_currents_a", "x_phases", "charging_periods")
    if draw(st.booleans()) and (not partial or field == "last_updated") and field not in optional:
        del session[field]
        return session, f"missing {field}"
    if field == "id" and value == session_id:
        value = session_id + "-other"
    session[field] = value
    return session, f"{field}={value!r}"[:80]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=20,
)

# --- helpers ----------------------------------------------------------------------------------------------


def snapshot() -> tuple:
    """Everything a push may change: every session row and every state row."""
    sessions = sorted(tuple(str(v) for v in row) for row in Session.objects.values_list())
    states = sorted(tuple(str(v) for v in row) for row in SessionState.objects.values_list())
    return tuple(sessions), tuple(states)


def check_envelope(response, door: str) -> dict:
    tally.record(door, response.status_code)
    assert response.status_code < 500, response.content[:500]
    assert response["Content-Type"] == "application/json"
    envelope = json.loads(response.content)
    assert isinstance(envelope, dict) and set(envelope) <= {"data", "status_code", "status_message", "timestamp"}
    assert isinstance(envelope["status_code"], int) and TIMESTAMP.match(envelope["timestamp"])
    assert isinstance(envelope.get("status_message", ""), str)
    assert response["X-Request-ID"] and response["X-Correlation-ID"]
    return envelope


def path(session_id: str, party_id: str = "CPO") -> str:
    return f"2.2.1/sessions/NL/{party_id}/{session_id}"


# --- sessions -----------------------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_valid_sessions_are_stored_with_1000(ocpi, cpo, data):
    sid = data.draw(ascii_id, label="session id")
    body = data.draw(valid_session(sid), label="body")
    known = Session.objects.filter(session_id=sid).exists()
    response = ocpi("PUT", path(sid), body)
    envelope = check_envelope(response, "OCPI PUT session (valid)")
    assert (response.status_code, envelope["status_code"]) == (200 if known else 201, 1000)
    stored = Session.objects.get(session_id=sid)
    assert stored.kwh == body["kwh"] or stored.last_updated > datetime.fromisoformat(body["last_updated"])
    assert stored.states.filter(timestamp=datetime.fromisoformat(body["last_updated"])).exists()
    patch = {"last_updated": body["last_updated"], "kwh": data.draw(st.floats(0, 1e12, allow_nan=False))}
    response = ocpi("PATCH", path(sid), patch)
    assert check_envelope(response, "OCPI PATCH session (valid)")["status_code"] == 1000


@FUZZ
@given(data=st.data())
def test_broken_sessions_are_2001_and_leave_nothing(ocpi, cpo, data):
    sid = data.draw(st.sampled_from(["S1", "S2"]), label="session id")
    if data.draw(st.booleans(), label="known session"):
        ocpi("PUT", path(sid), data.draw(valid_session(sid)))
    method = data.draw(st.sampled_from(["PUT", "PATCH"]), label="method")
    body, broken = data.draw(broken_session(sid, partial=method == "PATCH"), label="body")
    before = snapshot()
    response = ocpi(method, path(sid), body)
    envelope = check_envelope(response, f"OCPI {method} session (broken)")
    known = any(sid == s[4] for s in before[0]) if before[0] else False
    if method == "PATCH" and not known and envelope["status_code"] == 2000:
        assert response.status_code == 404  # unknown session: the path is checked before the body
    else:
        assert (response.status_code, envelope["status_code"]) == (200, 2001), broken
        assert envelope["status_message"]
    assert snapshot() == before, f"refused push ({broken}) changed the database"


@FUZZ
@given(sid=st.one_of(st.text(min_size=37, max_size=120).filter(lambda s: "/" not in s and s.strip() == s and s),
                     st.text(st.characters(min_codepoint=0x80, exclude_categories=["Cs"]), min_size=1, max_size=36)),
       method=st.sampled_from(["PUT", "PATCH", "GET"]))
def test_unicode_and_overlong_ids_in_the_url_are_refused(ocpi, cpo, sid, method):
    from urllib.parse import quote

    body = {"country_code": "NL", "party_id": "CPO", "id": sid, "last_updated": "2025-05-06T17:05:00Z"}
    before = snapshot()
    response = ocpi(method, path(quote(sid, safe="")), None if method == "GET" else body)
    envelope = check_envelope(response, f"OCPI {method} session (bad id in URL)")
    if method == "GET":
        assert (response.status_code, envelope["status_code"]) == (404, 2000)
    else:
        assert (response.status_code, envelope["status_code"]) == (200, 2001)
        assert "session_id" in envelope["status_message"]
    assert snapshot() == before


@FUZZ
@given(body=json_values, method=st.sampled_from(["PUT", "PATCH"]))
def test_any_json_at_the_session_door(ocpi, cpo, body, method):
    before = snapshot()
    response = ocpi(method, path("S9"), body)
    envelope = check_envelope(response, f"OCPI {method} session (random JSON)")
    expected = {(200, 2001)} | ({(404, 2000)} if method == "PATCH" else set())
    assert (response.status_code, envelope["status_code"]) in expected
    assert snapshot() == before


@FUZZ
@given(raw=st.binary(max_size=300) | st.text(max_size=200).map(lambda t: ("{" + t).encode()))
def test_bytes_that_are_not_json_are_400(ocpi, cpo, raw):
    try:
        json.loads(raw.decode("utf-8"))
        return  # hypothesis found valid JSON: covered by the test above
    except (UnicodeDecodeError, ValueError):
        pass
    if not raw.strip():
        return
    before = snapshot()
    response = ocpi("PUT", path("S9"), raw=raw)
    envelope = check_envelope(response, "OCPI PUT session (not JSON)")
    assert (response.status_code, envelope["status_code"]) == (400, 2000)
    assert snapshot() == before


# --- other doors ------------------------------------------------------------------------------------------


@FUZZ
@given(body=json_values | st.fixed_dictionaries({"result": st.sampled_from(["ACCEPTED", "REJECTED", "UNKNOWN"])}),
       call_id=st.one_of(st.uuids().map(str), st.text(min_size=1, max_size=60).filter(
    lambda s: "/" not in s and s.strip() == s)))
def test_any_json_at_the_profile_result_door(ocpi, cpo, body, call_id):
    from urllib.parse import quote

    response = ocpi("POST", f"2.2.1/chargingprofiles/results/{quote(call_id, safe='')}", body)
    envelope = check_envelope(response, "OCPI POST profile result (random)")
    # None of these ids is ours: a valid result is 404 / 2000; an invalid body may be named first (2001).
    valid = isinstance(body, dict) and set(body) == {"result"}
    assert (response.status_code, envelope["status_code"]) in ({(404, 2000)} if valid else {(404, 2000), (200, 2001)})


@FUZZ
@given(body=json_values | st.fixed_dictionaries({
    "start_date_time": st.one_of(when.map(stamp), ABSURD["time"]),
    "charging_profile": st.fixed_dictionaries({
        "charging_rate_unit": st.sampled_from(["A", "W", "kW", None]),
        "charging_profile_period": st.lists(st.fixed_dictionaries({
            "start_period": st.one_of(st.integers(-10, 10**12), st.just("0")),
            "limit": st.one_of(st.floats(-1e9, 1e308, allow_nan=False), st.just(None))}), max_size=3)})}))
def test_any_json_at_the_active_profile_door(ocpi, cpo, body):
    session = _session(cpo)
    before = ActiveProfileUpdate.objects.count()
    response = ocpi("PUT", f"2.2.1/chargingprofiles/{session.session_id}", body)
    envelope = check_envelope(response, "OCPI PUT active profile (random)")
    assert (response.status_code, envelope["status_code"]) in {(200, 1000), (200, 2001)}
    stored = ActiveProfileUpdate.objects.count() - before
    assert stored == (1 if envelope["status_code"] == 1000 else 0)


@FUZZ
@given(body=json_values | st.fixed_dictionaries({
    "token": st.one_of(st.text(max_size=80), st.integers()), "url": st.text(max_size=40),
    "roles": st.lists(json_values, max_size=2)}))
def test_any_json_at_the_credentials_door_changes_nothing(ocpi, cpo, body):
    party = OcpiParty.objects.values().get(pk=cpo.pk)
    response = ocpi("PUT", "2.2.1/credentials", body)
    envelope = check_envelope(response, "OCPI PUT credentials (random)")
    assert (response.status_code, envelope["status_code"]) == (200, 2001)
    assert OcpiParty.objects.values().get(pk=cpo.pk) == party


def _session(party) -> Session:
    session, _ = Session.objects.get_or_create(
        party=party, country_code="NL", ocpi_party_id=party.party_id, session_id="AP1",
        defaults={"location_id": "L", "evse_uid": "E", "connector_id": "1", "status": "ACTIVE", "kwh": 0.0,
                  "start_date_time": datetime(2025, 5, 6, 17, tzinfo=UTC),
                  "last_updated": datetime(2025, 5, 6, 17, tzinfo=UTC)})
    return session


# --- absurd sizes -----------------------------------------------------------------------------------------

TEN_MB = 10 * 1024 * 1024


def test_ten_megabyte_session_is_413(ocpi, cpo):
    body = json.dumps({"id": "S1", "pad": "x" * TEN_MB}).encode()
    response = ocpi("PUT", path("S1"), raw=body)
    envelope = check_envelope(response, "OCPI PUT session (10 MB)")
    assert (response.status_code, envelope["status_code"]) == (413, 2000)
    assert not Session.objects.exists()


@pytest.mark.parametrize("url", ["/api/v1/signals/", "/api/v1/settlement/runs/"])
def test_ten_megabyte_rest_body_is_413(client, brp, analyst, url):
    from flexibility.models import Signal
    from settlement.models import SettlementRun

    body = json.dumps({"external_id": "x" * TEN_MB, "direction": "reduce_consumption"})
    if "settlement" in url:
        client.force_login(analyst)
    else:
        client.defaults["HTTP_AUTHORIZATION"] = f"Token {brp.api_token}"
    response = client.post(url, body, content_type="application/json")
    tally.record(f"REST POST {url} (10 MB)", response.status_code)
    assert response.status_code == 413 and "exceeds the limit" in response.json()["detail"]
    assert not Signal.objects.exists() and not SettlementRun.objects.exists()
