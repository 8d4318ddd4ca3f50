"""Credentials handshake in both directions, over real HTTP: live_server is us, a loopback server the CPO."""

from __future__ import annotations

import base64
import io

import pytest
import requests
from django.core.management import CommandError, call_command

from ocpi.models import OcpiParty, OcpiPartyRole, Session, hash_token
from ocpi.services import reissue_token

from .conftest import TOKEN, b64, session_payload
from .loopback import LoopbackServer, ok

TOKEN_B = "cpo-token-b-for-calling-the-cpo"


def cpo_roles(party_id: str = "ACM") -> list:
    return [{"role": "CPO", "business_details": {"name": "Acme CPO"}, "party_id": party_id, "country_code": "NL"}]


def serve_versions(server, *, expected_token: str, version: str = "2.2.1", modules=None) -> None:
    modules = modules or [("credentials", "SENDER"), ("sessions", "SENDER"), ("chargingprofiles", "RECEIVER")]

    def guarded(data):
        def handler(call):
            if call.headers.get("Authorization") != f"Token {b64(expected_token)}":
                return ok(None, 2000, 401)
            return ok(data)
        return handler

    server.route("GET", "/versions", guarded([{"version": version, "url": f"{server.url}/{version}"}]))
    endpoints = [{"identifier": i, "role": r, "url": f"{server.url}/{version}/{i}"} for i, r in modules]
    server.route("GET", f"/{version}", guarded({"version": version, "endpoints": endpoints}))


@pytest.fixture
def ours(live_server, settings):
    settings.OCPI_BASE_URL = f"{live_server.url}/ocpi"
    return settings.OCPI_BASE_URL


def call(method: str, url: str, token: str, body=None) -> requests.Response:
    return requests.request(method, url, json=body, headers={"Authorization": f"Token {b64(token)}"}, timeout=10)


def issue(name: str = "Acme") -> str:
    out = io.StringIO()
    call_command("ocpi_issue_token", name, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def test_cpo_registers_updates_and_unregisters(ours, cpo_server):
    token_a = issue()
    party = OcpiParty.objects.get(name="Acme")
    assert party.status == "PENDING" and party.token_ours_hash == hash_token(token_a)
    serve_versions(cpo_server, expected_token=TOKEN_B)
    creds = {"token": TOKEN_B, "url": f"{cpo_server.url}/versions", "roles": cpo_roles()}

    answer = call("POST", f"{ours}/2.2.1/credentials", token_a, creds).json()
    assert answer["status_code"] == 1000, answer
    token_c = answer["data"]["token"]
    assert answer["data"]["url"] == f"{ours}/versions/"
    assert answer["data"]["roles"][0]["role"] == "SCSP"
    party.refresh_from_db()
    assert (party.status, party.token_theirs) == ("REGISTERED", TOKEN_B)
    assert (party.country_code, party.party_id) == ("NL", "ACM")
    assert party.endpoint_url("chargingprofiles", "RECEIVER") == f"{cpo_server.url}/2.2.1/chargingprofiles"
    assert party.token_ours_hash == hash_token(token_c)  # token A is thrown away
    assert call("GET", f"{ours}/versions", token_a).status_code == 401
    put = call("PUT", f"{ours}/2.2.1/sessions/NL/ACM/S1", token_c, session_payload(party_id="ACM"))
    assert put.status_code == 201

    assert call("POST", f"{ours}/2.2.1/credentials", token_c, creds).status_code == 405
    updated = call("PUT", f"{ours}/2.2.1/credentials", token_c, creds).json()
    token_c2 = updated["data"]["token"]
    assert token_c2 != token_c
    assert call("GET", f"{ours}/versions", token_c).status_code == 401
    assert call("GET", f"{ours}/2.2.1/credentials", token_c2).json()["data"]["token"] == token_c2

    deleted = call("DELETE", f"{ours}/2.2.1/credentials", token_c2)
    assert deleted.status_code == 200 and deleted.json()["status_code"] == 1000
    party.refresh_from_db()
    assert party.status == "REVOKED"
    assert call("GET", f"{ours}/versions", token_c2).status_code == 401


def test_put_and_delete_before_registering_are_405(ours, cpo_server):
    token_a = issue()
    creds = {"token": TOKEN_B, "url": f"{cpo_server.url}/versions", "roles": cpo_roles()}
    assert call("PUT", f"{ours}/2.2.1/credentials", token_a, creds).status_code == 405
    assert call("DELETE", f"{ours}/2.2.1/credentials", token_a).status_code == 405


@pytest.mark.parametrize(("setup", "status_code"), [
    ("unreachable", 3001),
    ("wrong_token", 3001),
    ("old_version", 3002),
    ("no_chargingprofiles", 3003),
])
def test_failed_exchange_keeps_the_party_pending(ours, cpo_server, setup, status_code):
    token_a = issue()
    versions_url = f"{cpo_server.url}/versions"
    if setup == "unreachable":
        versions_url = "http://127.0.0.1:9/versions"
    else:
        serve_versions(cpo_server, expected_token="other" if setup == "wrong_token" else TOKEN_B,
                       version="2.1.1" if setup == "old_version" else "2.2.1",
                       modules=[("credentials", "SENDER")] if setup == "no_chargingprofiles" else None)
    creds = {"token": TOKEN_B, "url": versions_url, "roles": cpo_roles()}
    answer = call("POST", f"{ours}/2.2.1/credentials", token_a, creds).json()
    assert answer["status_code"] == status_code
    assert OcpiParty.objects.get().status == "PENDING"
    assert call("GET", f"{ours}/versions", token_a).status_code == 200  # token A still usable


def test_invalid_credentials_object_is_2001(ours):
    token_a = issue()
    answer = call("POST", f"{ours}/2.2.1/credentials", token_a, {"token": "x", "url": "ftp://x", "roles": []}).json()
    assert answer["status_code"] == 2001
    assert OcpiParty.objects.get().status == "PENDING"


def test_we_register_with_a_cpo(ours, cpo_server):
    token_a, token_c = "cpo-gave-us-token-a", "cpo-token-c-for-us"
    serve_versions(cpo_server, expected_token=token_a)
    callbacks = []

    def post_credentials(call_):
        # Like a real CPO: fetch the SCSP's versions with token B before answering.
        token_b = call_.body["token"]
        callbacks.append(call("GET", call_.body["url"], token_b).status_code)
        callbacks.append(token_b)
        return ok({"token": token_c, "url": f"{cpo_server.url}/versions", "roles": cpo_roles("CPX")})

    cpo_server.route("POST", "/2.2.1/credentials", post_credentials)
    out = io.StringIO()
    call_command("ocpi_register", f"{cpo_server.url}/versions", token_a, "--name", "Acme", stdout=out)
    party = OcpiParty.objects.get()
    assert "registered party" in out.getvalue()
    assert callbacks[0] == 200
    assert (party.status, party.token_theirs, party.party_id, party.role) == ("REGISTERED", token_c, "CPX", "CPO")
    assert party.token_ours_hash == hash_token(callbacks[1])
    posted = next(c for c in cpo_server.calls if c.method == "POST")
    assert posted.headers["Authorization"] == f"Token {b64(token_a)}"
    assert posted.body["roles"][0]["role"] == "SCSP" and posted.body["url"] == f"{ours}/versions/"
    put = call("PUT", f"{ours}/2.2.1/sessions/NL/CPX/S1", callbacks[1], session_payload(party_id="CPX"))
    assert put.status_code == 201


def test_failed_registration_leaves_party_pending(ours, cpo_server):
    serve_versions(cpo_server, expected_token="token-a")
    cpo_server.route("POST", "/2.2.1/credentials", lambda c: ok(None, 2001))
    with pytest.raises(CommandError, match="registration failed"):
        call_command("ocpi_register", f"{cpo_server.url}/versions", "token-a")
    assert OcpiParty.objects.get().status == "PENDING"


def test_register_refuses_a_cpo_without_2_2_1(ours, cpo_server):
    serve_versions(cpo_server, expected_token="token-a", version="2.1.1")
    with pytest.raises(CommandError, match=r"2\.2\.1"):
        call_command("ocpi_register", f"{cpo_server.url}/versions", "token-a")
    assert not OcpiParty.objects.exists()


def serve_raw_only(server, token: str) -> None:
    """A 2.2.x platform that wants the raw token and answers 401 to base64."""
    def guarded(data):
        return lambda call_: ok(data) if call_.headers.get("Authorization") == f"Token {token}" else ok(None, 2000, 401)

    server.route("GET", "/versions", guarded([{"version": "2.2.1", "url": f"{server.url}/2.2.1"}]))
    endpoints = [{"identifier": i, "role": r, "url": f"{server.url}/2.2.1/{i}/"}
                 for i, r in (("credentials", "SENDER"), ("chargingprofiles", "RECEIVER"))]
    server.route("GET", "/2.2.1", guarded({"version": "2.2.1", "endpoints": endpoints}))
    server.route("POST", "/2.2.1/credentials/", guarded({"token": "their-c", "url": f"{server.url}/versions",
                                                        "roles": cpo_roles("RAW")}))


def test_we_register_with_a_raw_token_platform_and_remember_it(ours, cpo_server):
    serve_raw_only(cpo_server, "token-a")
    call_command("ocpi_register", f"{cpo_server.url}/versions", "token-a", stdout=io.StringIO())
    party = OcpiParty.objects.get()
    assert (party.status, party.token_encoding, party.party_id) == ("REGISTERED", "raw", "RAW")
    auth = [c.headers["Authorization"] for c in cpo_server.calls]
    # One 401 with base64, then raw for everything; the POST went to the URL exactly as advertised.
    assert auth == [f"Token {b64('token-a')}", "Token token-a", "Token token-a", "Token token-a"]
    assert cpo_server.calls[-1].path == "/2.2.1/credentials/"


def test_a_cpo_with_a_raw_token_platform_registers_with_us(ours, cpo_server):
    token_a = issue()
    serve_raw_only(cpo_server, TOKEN_B)
    creds = {"token": TOKEN_B, "url": f"{cpo_server.url}/versions", "roles": cpo_roles()}
    assert call("POST", f"{ours}/2.2.1/credentials", token_a, creds).json()["status_code"] == 1000
    assert OcpiParty.objects.get().token_encoding == "raw"


def test_inbound_token_with_a_trailing_newline_after_decoding_is_accepted(ocpi, party):
    header = base64.b64encode(f"{TOKEN}\n".encode()).decode()
    response = ocpi("GET", "2.2.1/sessions/NL/CPO/S1", token=None, headers={"Authorization": f"Token {header}"})
    assert response.status_code == 404  # authenticated: the session is simply unknown


def test_an_identity_held_by_another_party_is_3001_before_any_call(ours, cpo_server):
    holder = OcpiParty.objects.create(name="Acme", country_code="NL", party_id="ACM", token_ours_hash="h",
                                      status=OcpiParty.Status.REGISTERED)
    OcpiPartyRole.objects.create(party=holder, country_code="NL", ocpi_party_id="ACM", role="CPO")
    token_a = issue("Mallory")
    serve_versions(cpo_server, expected_token=TOKEN_B)
    creds = {"token": TOKEN_B, "url": f"{cpo_server.url}/versions", "roles": cpo_roles("acm")}
    answer = call("POST", f"{ours}/2.2.1/credentials", token_a, creds).json()
    assert answer["status_code"] == 3001 and "NL/ACM is held by another registered party" in answer["status_message"]
    assert cpo_server.calls == []  # refused before any outbound call
    assert OcpiParty.objects.get(name="Mallory").status == "PENDING"


def test_every_role_is_stored_and_a_hub_may_push_for_each(ours, cpo_server):
    token_a = issue("Hub")
    serve_versions(cpo_server, expected_token=TOKEN_B)
    roles = [{"role": "HUB", "business_details": {"name": "Hub"}, "party_id": "HUB", "country_code": "NL"},
             *cpo_roles("CPA"), {"role": "CPO", "business_details": {"name": "B"}, "party_id": "CPB",
                                 "country_code": "DE"}]
    creds = {"token": TOKEN_B, "url": f"{cpo_server.url}/versions", "roles": roles}
    token_c = call("POST", f"{ours}/2.2.1/credentials", token_a, creds).json()["data"]["token"]
    party = OcpiParty.objects.get()
    assert sorted(party.roles.values_list("country_code", "ocpi_party_id", "role")) == [
        ("DE", "CPB", "CPO"), ("NL", "CPA", "CPO"), ("NL", "HUB", "HUB")]
    body = session_payload(country_code="DE", party_id="CPB")
    assert call("PUT", f"{ours}/2.2.1/sessions/DE/CPB/S1", token_c, body).status_code == 201


def test_failed_attempts_lock_token_a_until_reissued(ours, settings):
    settings.OCPI_CREDENTIALS_MAX_FAILURES = 3
    token_a = issue()
    creds = {"token": TOKEN_B, "url": "http://127.0.0.1:9/versions", "roles": cpo_roles()}
    answers = [call("POST", f"{ours}/2.2.1/credentials", token_a, creds).json()["status_code"] for _ in range(4)]
    assert answers == [3001, 3001, 3001, 2000]  # the fourth is refused without trying
    party = OcpiParty.objects.get()
    assert party.token_locked_at is not None
    new_token = reissue_token(party)
    party.refresh_from_db()
    assert party.token_locked_at is None
    assert call("POST", f"{ours}/2.2.1/credentials", new_token, creds).json()["status_code"] == 3001


def test_we_rotate_our_credentials_with_a_put(ours, cpo_server, party):
    seen = []

    def put_credentials(call_):
        seen.append(call_.body["token"])
        # Like a real party: it checks our versions with the new token before answering.
        seen.append(call("GET", call_.body["url"], call_.body["token"]).status_code)
        return ok({"token": "their-new-token", "url": f"{cpo_server.url}/versions", "roles": cpo_roles("CPO")})

    party.endpoints = [*party.endpoints, {"identifier": "credentials", "role": "RECEIVER",
                                          "url": f"{cpo_server.url}/ocpi/2.2.1/credentials/"}]
    party.save()
    cpo_server.route("PUT", "/ocpi/2.2.1/credentials/", put_credentials)
    out = io.StringIO()
    call_command("ocpi_update_credentials", str(party.pk), stdout=out)
    party.refresh_from_db()
    assert (party.token_theirs, party.token_ours_hash) == ("their-new-token", hash_token(seen[0]))
    assert seen[1] == 200
    put = next(c for c in cpo_server.calls if c.method == "PUT")
    assert put.headers["Authorization"] == f"Token {b64('scsp-token-for-cpo')}"  # the token we held until now


def _serve_one_session(server, party_id: str) -> None:
    page = [session_payload(party_id=party_id, id="ONGOING", x_phase_currents_a=...)]  # standard data
    server.route("GET", "/2.2.1/sessions", lambda c: ok(page, headers={"X-Total-Count": "1", "X-Limit": "50"}))


def _serve_one_location(server, party_id: str) -> None:
    connector = {"id": "1", "standard": "IEC_62196_T2", "format": "SOCKET", "power_type": "AC_1_PHASE",
                 "max_voltage": 230, "max_amperage": 32, "last_updated": "2025-05-06T12:00:00Z"}
    page = [{"country_code": "NL", "party_id": party_id, "id": "L1", "publish": True, "address": "Dam 1",
             "city": "Amsterdam", "country": "NLD", "time_zone": "Europe/Amsterdam",
             "coordinates": {"latitude": "52.37", "longitude": "4.89"}, "last_updated": "2025-05-06T12:00:00Z",
             "evses": [{"uid": "E1", "status": "CHARGING", "connectors": [connector],
                        "last_updated": "2025-05-06T12:00:00Z"}]}]
    server.route("GET", "/2.2.1/locations", lambda c: ok(page, headers={"X-Total-Count": "1", "X-Limit": "50"}))


def test_registering_with_a_cpo_pulls_its_locations_then_its_ongoing_sessions_at_once(ours, cpo_server):
    # Pushes bring only new states (about every 5 minutes a session): without this pull the sessions
    # charging at registration stay unknown, and uncapped, until then. Locations first, so that a
    # session is created with its connector's phases.
    token_a = "cpo-gave-us-token-a"
    serve_versions(cpo_server, expected_token=token_a, modules=[
        ("credentials", "SENDER"), ("sessions", "SENDER"), ("locations", "SENDER"), ("chargingprofiles", "RECEIVER")])
    cpo_server.route("POST", "/2.2.1/credentials",
                     lambda c: ok({"token": "c", "url": f"{cpo_server.url}/versions", "roles": cpo_roles("CPX")}))
    _serve_one_session(cpo_server, "CPX")
    _serve_one_location(cpo_server, "CPX")
    call_command("ocpi_register", f"{cpo_server.url}/versions", token_a, stdout=io.StringIO())
    session = Session.objects.get(session_id="ONGOING", status="ACTIVE")
    assert (session.phases, session.phases_source) == (1, "connector")
    pulls = [c.path for c in cpo_server.calls if c.path.startswith(("/2.2.1/sessions", "/2.2.1/locations"))]
    assert pulls == ["/2.2.1/locations", "/2.2.1/sessions"]


def test_a_cpo_registering_with_us_gets_its_sessions_pulled_unless_it_offers_none(ours, cpo_server):
    serve_versions(cpo_server, expected_token=TOKEN_B)
    _serve_one_session(cpo_server, "ACM")
    creds = {"token": TOKEN_B, "url": f"{cpo_server.url}/versions", "roles": cpo_roles()}
    assert call("POST", f"{ours}/2.2.1/credentials", issue(), creds).json()["status_code"] == 1000
    assert Session.objects.filter(session_id="ONGOING").exists()

    other = LoopbackServer()
    with other:
        serve_versions(other, expected_token=TOKEN_B, modules=[("credentials", "SENDER"),
                                                               ("chargingprofiles", "RECEIVER")])
        creds = {"token": TOKEN_B, "url": f"{other.url}/versions", "roles": cpo_roles("OTH")}
        assert call("POST", f"{ours}/2.2.1/credentials", issue("Other"), creds).json()["status_code"] == 1000
        assert [c.path for c in other.calls if c.method == "GET"] == ["/versions", "/2.2.1"]
