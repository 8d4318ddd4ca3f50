"""Versions and credentials: both directions of the OCPI 2.2.1 registration handshake.

(a) A CPO registers with us: `issue_token` gives token A (shown once, hash kept); the CPO POSTs its
    credentials with it; we fetch its versions + details with its token, answer with our token C.
(b) We register with a CPO: `register_with(versions_url, token_a)` fetches its versions + details,
    POSTs our credentials with a fresh token B and keeps the token C it returns.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlparse

from django.conf import settings
from django.db import transaction

from smatch import clock

from ..client import call_json
from ..errors import (
    MethodNotAllowed,
    NoMatchingEndpoints,
    OcpiClientError,
    OcpiValidationError,
    UnableToUseClientApi,
    UnsupportedVersion,
)
from ..models import OcpiParty, hash_token
from ..schemas import cistring, url, validate_credentials

VERSION = "2.2.1"
# Modules we need from a CPO: without the chargingprofiles Receiver there is nothing to steer.
REQUIRED_ENDPOINTS = (("chargingprofiles", "RECEIVER"),)


def new_token() -> str:
    """A credentials token: 43 URL-safe characters (fits OCPI's string(64), printable ASCII)."""
    return secrets.token_urlsafe(32)


def issue_token(name: str) -> tuple[OcpiParty, str]:
    """A PENDING party holding the hash of a fresh token A; the token is returned once, never stored."""
    token = new_token()
    party = OcpiParty.objects.create(name=name, token_ours_hash=hash_token(token), status=OcpiParty.Status.PENDING)
    return party, token


def versions() -> list[dict]:
    return [{"version": VERSION, "url": f"{settings.OCPI_BASE_URL}/{VERSION}"}]


def version_details() -> dict:
    base = f"{settings.OCPI_BASE_URL}/{VERSION}"
    return {"version": VERSION, "endpoints": [
        {"identifier": "credentials", "role": "SENDER", "url": f"{base}/credentials"},
        {"identifier": "credentials", "role": "RECEIVER", "url": f"{base}/credentials"},
        {"identifier": "sessions", "role": "RECEIVER", "url": f"{base}/sessions"},
        {"identifier": "chargingprofiles", "role": "SENDER", "url": f"{base}/chargingprofiles"},
    ]}


def our_credentials(token: str) -> dict:
    """Our Credentials object: `token` is what the other party must send us."""
    return {
        "token": token,
        "url": f"{settings.OCPI_BASE_URL}/versions",
        "roles": [{
            "role": "SCSP",
            "business_details": {"name": settings.OCPI_BUSINESS_NAME},
            "party_id": settings.OCPI_PARTY_ID,
            "country_code": settings.OCPI_COUNTRY_CODE,
        }],
    }


def _fetch_endpoints(versions_url: str, token: str) -> list[dict]:
    """GET their versions, pick 2.2.1, GET its details: the endpoint list (OcpiClientError on failure)."""
    listed = call_json("GET", versions_url, token, what="GET versions")
    if not isinstance(listed, list):
        raise OcpiClientError("GET versions: data is not a list")
    chosen = next((v for v in listed if isinstance(v, dict) and v.get("version") == VERSION), None)
    if chosen is None:
        raise UnsupportedVersion(f"the party does not offer OCPI {VERSION}")
    details = call_json("GET", url(chosen.get("url"), "versions[].url"), token, what="GET version details")
    endpoints = details.get("endpoints") if isinstance(details, dict) else None
    if not isinstance(endpoints, list):
        raise OcpiClientError("GET version details: no endpoints list")
    cleaned = []
    for i, endpoint in enumerate(endpoints):
        if not isinstance(endpoint, dict):
            raise OcpiClientError(f"version details: endpoints[{i}] is not an object")
        cleaned.append({"identifier": cistring(endpoint.get("identifier"), f"endpoints[{i}].identifier", 32),
                        "role": str(endpoint.get("role", "")), "url": url(endpoint.get("url"), f"endpoints[{i}].url")})
    missing = [f"{i} {r}" for i, r in REQUIRED_ENDPOINTS
               if not any(e["identifier"] == i and e["role"] == r for e in cleaned)]
    if missing:
        raise NoMatchingEndpoints(f"the party offers no {', '.join(missing)} endpoint")
    return cleaned


def _main_role(roles: list[dict]) -> dict:
    return next((r for r in roles if r["role"] == "CPO"), roles[0])


def accept_credentials(party: OcpiParty, payload: object, *, method: str) -> dict:
    """POST (register) or PUT (update) their credentials; returns our new credentials (token C).

    Fetching their endpoints is the one outbound call a web request makes: the spec requires it
    before answering (3001 when it fails).
    """
    registered = party.status == OcpiParty.Status.REGISTERED
    if method == "POST" and registered:
        raise MethodNotAllowed("already registered: use PUT to update or DELETE to unregister")
    if method == "PUT" and not registered:
        raise MethodNotAllowed("not registered yet: POST your credentials first")
    creds = validate_credentials(payload)
    try:
        endpoints = _fetch_endpoints(creds["url"], creds["token"])
    except OcpiValidationError as exc:
        raise UnableToUseClientApi(f"your version details are invalid: {exc.message}") from None
    except OcpiClientError as exc:
        raise UnableToUseClientApi(f"could not use your API: {exc}") from None
    token_c, role = new_token(), _main_role(creds["roles"])
    with transaction.atomic():
        party = OcpiParty.objects.select_for_update().get(pk=party.pk)
        party.token_theirs, party.token_ours_hash = creds["token"], hash_token(token_c)
        party.versions_url, party.version, party.endpoints = creds["url"], VERSION, endpoints
        party.country_code, party.party_id, party.role = role["country_code"], role["party_id"], role["role"]
        party.status, party.updated_at = OcpiParty.Status.REGISTERED, clock.now()
        party.save()
    return our_credentials(token_c)


def reissue_token(party: OcpiParty) -> str:
    """A fresh token A for a party that has not registered yet (the old one stops working)."""
    if party.status != OcpiParty.Status.PENDING:
        raise MethodNotAllowed(f"{party} is not pending: its token comes from the credentials exchange")
    token = new_token()
    OcpiParty.objects.filter(pk=party.pk).update(token_ours_hash=hash_token(token), updated_at=clock.now())
    return token


def unregister(party: OcpiParty) -> None:
    """DELETE credentials: the party is REVOKED and its token stops working at once."""
    if party.status != OcpiParty.Status.REGISTERED:
        raise MethodNotAllowed("not registered")
    OcpiParty.objects.filter(pk=party.pk).update(status=OcpiParty.Status.REVOKED, updated_at=clock.now())


def register_with(versions_url: str, token_a: str, name: str = "", party: OcpiParty | None = None) -> OcpiParty:
    """We register with a party (its versions URL and the token A it gave us offline).

    `party`: an existing not-yet-registered row to use (the admin action), else a new one is created.
    """
    if party is not None and party.status == OcpiParty.Status.REGISTERED:
        raise MethodNotAllowed(f"{party} is registered already")
    versions_url = url(versions_url, "versions_url")
    endpoints = _fetch_endpoints(versions_url, token_a)
    credentials_url = next((e["url"] for e in endpoints if e["identifier"] == "credentials"), None)
    if credentials_url is None:
        raise NoMatchingEndpoints("the party offers no credentials endpoint")
    token_b = new_token()
    # Saved as REGISTERED before the POST: the party calls back with token B while answering it,
    # and may push sessions right after. Reverted to PENDING if the POST fails.
    party = party or OcpiParty(name=name or urlparse(versions_url).netloc)
    party.versions_url, party.endpoints, party.token_theirs = versions_url, endpoints, token_a
    party.token_ours_hash, party.status = hash_token(token_b), OcpiParty.Status.REGISTERED
    party.save()
    try:
        answer = call_json("POST", credentials_url, token_a, body=our_credentials(token_b), what="POST credentials")
        creds = validate_credentials(answer)
    except (OcpiClientError, OcpiValidationError) as exc:
        OcpiParty.objects.filter(pk=party.pk).update(status=OcpiParty.Status.PENDING)
        raise OcpiClientError(f"registration failed: {exc}") from None
    role = _main_role(creds["roles"])
    party.token_theirs, party.country_code, party.party_id = creds["token"], role["country_code"], role["party_id"]
    party.role, party.updated_at = role["role"], clock.now()
    party.save()
    return party
