from __future__ import annotations

import base64
import json

import pytest

from ocpi.client import _clients
from ocpi.models import OcpiParty, OcpiPartyRole, hash_token

from .loopback import LoopbackServer

TOKEN = "cpo-token-c-0123456789"  # what the CPO sends us
THEIR_TOKEN = "scsp-token-for-cpo"  # what we send the CPO


def b64(token: str) -> str:
    return base64.b64encode(token.encode()).decode()


def session_payload(**overrides) -> dict:
    payload = {
        "country_code": "NL", "party_id": "CPO", "id": "S1",
        "start_date_time": "2025-05-06T17:00:00Z", "kwh": 1.5,
        "cdr_token": {"country_code": "NL", "party_id": "EMS", "uid": "T1", "type": "RFID", "contract_id": "C1"},
        "auth_method": "WHITELIST", "location_id": "L1", "evse_uid": "E1", "connector_id": "1",
        "currency": "EUR", "status": "ACTIVE", "last_updated": "2025-05-06T17:05:00Z",
        "x_phase_currents_a": [16.0, 15.5, 16.2],
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not ...}


@pytest.fixture(autouse=True)
def _fresh_clients():
    _clients.clear()
    yield
    _clients.clear()


@pytest.fixture
def cpo_server():
    with LoopbackServer() as server:
        yield server


def holding(party: OcpiParty, *identities: tuple[str, str], role: str = "CPO") -> OcpiParty:
    """Give `party` these (country_code, party_id) identities, as a credentials exchange would."""
    for country_code, party_id in identities:
        OcpiPartyRole.objects.create(party=party, country_code=country_code, ocpi_party_id=party_id, role=role)
    return party


@pytest.fixture
def party(db, cpo_server) -> OcpiParty:
    return holding(OcpiParty.objects.create(
        name="Test CPO", country_code="NL", party_id="CPO", role="CPO", status=OcpiParty.Status.REGISTERED,
        token_ours_hash=hash_token(TOKEN), token_theirs=THEIR_TOKEN, versions_url=f"{cpo_server.url}/versions",
        endpoints=[
            {"identifier": "sessions", "role": "SENDER", "url": f"{cpo_server.url}/ocpi/2.2.1/sessions"},
            {"identifier": "chargingprofiles", "role": "RECEIVER", "url": f"{cpo_server.url}/ocpi/2.2.1/cp/"},
        ],
    ), ("NL", "CPO"))


class Ocpi:
    """Django test client speaking OCPI: token in the header, JSON bodies, parsed envelopes."""

    def __init__(self, client) -> None:
        self.client = client

    def __call__(self, method: str, path: str, body=None, *, token: str | None = TOKEN, encode: bool = True,
                 raw: bytes | None = None, headers: dict | None = None):
        extra = {}
        if token is not None:
            extra["HTTP_AUTHORIZATION"] = f"Token {b64(token) if encode else token}"
        for name, value in (headers or {}).items():
            extra["HTTP_" + name.upper().replace("-", "_")] = value
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        response = self.client.generic(method, f"/ocpi/{path}", data=data, content_type="application/json", **extra)
        response.envelope = json.loads(response.content)
        return response


@pytest.fixture
def ocpi(client) -> Ocpi:
    return Ocpi(client)
