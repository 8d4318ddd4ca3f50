"""Transport: auth header forms, envelope, request ids, status codes of every transport error."""

from __future__ import annotations

import pytest

from ocpi_client.models import OcpiParty, Session

from .conftest import TOKEN, session_payload

SESSION_PATH = "2.2.1/sessions/NL/CPO/S1"


def test_envelope_and_request_ids_are_echoed(ocpi, party):
    response = ocpi("GET", "versions", headers={"X-Request-ID": "req-1", "X-Correlation-ID": "corr-1"})
    assert response.status_code == 200
    assert response["X-Request-ID"] == "req-1"
    assert response["X-Correlation-ID"] == "corr-1"
    body = response.envelope
    assert body["status_code"] == 1000
    assert body["timestamp"].endswith("Z")
    assert body["data"] == [{"version": "2.2.1", "url": "http://127.0.0.1:8000/ocpi/2.2.1"}]


def test_missing_request_ids_get_fresh_ones(ocpi, party):
    response = ocpi("GET", "versions")
    assert len(response["X-Request-ID"]) == 36 and len(response["X-Correlation-ID"]) == 36


@pytest.mark.parametrize("encode", [True, False], ids=["base64", "raw"])
def test_right_token_in_both_forms(ocpi, party, encode):
    response = ocpi("PUT", SESSION_PATH, session_payload(), encode=encode)
    assert response.status_code == 201, response.envelope
    assert response.envelope["status_code"] == 1000
    assert response["OCPI-from-party-id"] == "SCS" and response["OCPI-to-party-id"] == "CPO"


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_missing_or_wrong_token_is_401_and_stores_nothing(ocpi, party, token):
    response = ocpi("PUT", SESSION_PATH, session_payload(), token=token)
    assert response.status_code == 401
    assert response.envelope["status_code"] == 2000
    assert "data" not in response.envelope
    assert not Session.objects.exists()


def test_other_auth_scheme_is_401(ocpi, party):
    response = ocpi("GET", "versions", token=None, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 401


def test_revoked_token_is_401(ocpi, party):
    OcpiParty.objects.filter(pk=party.pk).update(status=OcpiParty.Status.REVOKED)
    assert ocpi("GET", "versions").status_code == 401
    assert ocpi("PUT", SESSION_PATH, session_payload()).status_code == 401


def test_pending_token_only_reaches_versions_and_credentials(ocpi, party):
    OcpiParty.objects.filter(pk=party.pk).update(status=OcpiParty.Status.PENDING)
    assert ocpi("GET", "versions").status_code == 200
    assert ocpi("GET", "2.2.1").status_code == 200
    assert ocpi("GET", "2.2.1/credentials").status_code == 200
    response = ocpi("PUT", SESSION_PATH, session_payload())
    assert response.status_code == 401
    assert not Session.objects.exists()


def test_malformed_json_is_400(ocpi, party):
    response = ocpi("PUT", SESSION_PATH, raw=b'{"id": "S1",')
    assert response.status_code == 400
    assert response.envelope["status_code"] == 2000
    assert "not valid JSON" in response.envelope["status_message"]
    assert not Session.objects.exists()


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"NaN", b'{"kwh": Infinity}'])
def test_non_json_bodies_are_400(ocpi, party, raw):
    assert ocpi("PUT", SESSION_PATH, raw=raw).status_code == 400


def test_oversized_body_is_413(ocpi, party, settings):
    settings.OCPI_MAX_BODY_BYTES = 1000
    response = ocpi("PUT", SESSION_PATH, session_payload(meter_id="x" * 2000))
    assert response.status_code == 413
    assert "exceeds the limit of 1000 bytes" in response.envelope["status_message"]
    assert not Session.objects.exists()


def test_wrong_method_is_405_with_allow(ocpi, party):
    response = ocpi("DELETE", SESSION_PATH)
    assert response.status_code == 405
    assert response["Allow"] == "PUT, PATCH, GET"
    assert response.envelope["status_code"] == 2000


def test_unknown_path_is_404_envelope(ocpi, party):
    response = ocpi("GET", "2.2.1/tariffs")
    assert response.status_code == 404
    assert response.envelope["status_code"] == 2000


def test_trailing_slash_is_accepted(ocpi, party):
    assert ocpi("GET", "versions/").status_code == 200
    assert ocpi("PUT", SESSION_PATH + "/", session_payload()).status_code == 201


def test_version_details_list_our_modules(ocpi, party):
    data = ocpi("GET", "2.2.1").envelope["data"]
    assert data["version"] == "2.2.1"
    modules = {(e["identifier"], e["role"]) for e in data["endpoints"]}
    assert ("sessions", "RECEIVER") in modules
    assert ("chargingprofiles", "SENDER") in modules
    assert ("credentials", "SENDER") in modules
