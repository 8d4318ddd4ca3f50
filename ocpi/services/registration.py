"""Versions and credentials: both directions of the OCPI 2.2.1 registration handshake.

(a) A CPO registers with us: `issue_token` gives token A (shown once, hash kept); the CPO POSTs its
    credentials with it; we fetch its versions + details with its token, answer with our token C.
(b) We register with a CPO: `register_with(versions_url, token_a)` fetches its versions + details,
    POSTs our credentials with a fresh token B and keeps the token C it returns.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from smatch import clock

from ..client import call_json
from ..errors import (
    CredentialsBusy,
    MethodNotAllowed,
    NoMatchingEndpoints,
    OcpiClientError,
    OcpiError,
    OcpiValidationError,
    TokenLocked,
    UnableToUseClientApi,
    UnsupportedVersion,
)
from ..models import OcpiParty, hash_token
from ..schemas import cistring, url, validate_credentials
from . import queueing
from .identity import check_identities_free, claim_roles, retire_identities

log = logging.getLogger(__name__)

VERSION = "2.2.1"
# Modules we need from a CPO: without the chargingprofiles Receiver there is nothing to steer.
REQUIRED_ENDPOINTS = (("chargingprofiles", "RECEIVER"),)


def new_token() -> str:
    """A credentials token: 43 URL-safe characters (fits OCPI's string(64), printable ASCII)."""
    return secrets.token_urlsafe(32)


ENCODINGS = (OcpiParty.TokenEncoding.BASE64, OcpiParty.TokenEncoding.RAW)


def issue_token(name: str, **details: Any) -> tuple[OcpiParty, str]:
    """A PENDING party holding the hash of a fresh token A; the token is returned once, never stored.

    `details`: other fields known already (the admin's add form: versions URL, token theirs, identity).
    """
    token = new_token()
    party = OcpiParty.objects.create(**details, name=name, token_ours_hash=hash_token(token),
                                     status=OcpiParty.Status.PENDING)
    return party, token


def versions() -> list[dict]:
    return [{"version": VERSION, "url": f"{settings.OCPI_BASE_URL}/{VERSION}/"}]


def version_details() -> dict:
    """Our endpoints, each advertised with a trailing slash (callers append ids to it; both forms work)."""
    base = f"{settings.OCPI_BASE_URL}/{VERSION}"
    return {"version": VERSION, "endpoints": [
        {"identifier": "credentials", "role": "SENDER", "url": f"{base}/credentials/"},
        {"identifier": "credentials", "role": "RECEIVER", "url": f"{base}/credentials/"},
        {"identifier": "sessions", "role": "RECEIVER", "url": f"{base}/sessions/"},
        {"identifier": "chargingprofiles", "role": "SENDER", "url": f"{base}/chargingprofiles/"},
    ]}


def our_credentials(token: str) -> dict:
    """Our Credentials object: `token` is what the other party must send us."""
    return {
        "token": token,
        "url": f"{settings.OCPI_BASE_URL}/versions/",
        "roles": [{
            "role": "SCSP",
            "business_details": {"name": settings.OCPI_BUSINESS_NAME},
            "party_id": settings.OCPI_PARTY_ID,
            "country_code": settings.OCPI_COUNTRY_CODE,
        }],
    }


# Versions we speak with: 2.2.1, else 2.2 (the same for credentials, sessions and chargingprofiles
# where we use them).
ACCEPTED_VERSIONS = ("2.2.1", "2.2")
# A party that registers with us stores token C from our answer before it accepts calls with it.
FIRST_PULL_AFTER_ANSWER_S = 5.0


def _fetch_endpoints(versions_url: str, token: str, encoding: str = "base64") -> tuple[list[dict], str]:
    """GET their versions, pick 2.2.1 (else 2.2), GET its details: (endpoint list, version).

    OcpiClientError on failure. URLs are kept exactly as advertised (a trailing slash included).
    """
    listed = call_json("GET", versions_url, token, what="could not fetch your versions", token_encoding=encoding)
    if not isinstance(listed, list):
        raise OcpiClientError("could not fetch your versions: data is not a list")
    offered = {v.get("version"): v for v in listed if isinstance(v, dict)}
    version = next((v for v in ACCEPTED_VERSIONS if v in offered), None)
    if version is None:
        raise UnsupportedVersion(f"the party offers none of OCPI {', '.join(ACCEPTED_VERSIONS)}")
    details = call_json("GET", url(offered[version].get("url"), "versions[].url"), token,
                        what="could not fetch your version details", token_encoding=encoding)
    endpoints = details.get("endpoints") if isinstance(details, dict) else None
    if not isinstance(endpoints, list):
        raise OcpiClientError("version details: no endpoints list")
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
    return cleaned, version


def _is_401(exc: OcpiClientError) -> bool:
    return getattr(exc, "http_status", None) == 401


def _discover(versions_url: str, token: str, preferred: str = "base64") -> tuple[list[dict], str, str]:
    """_fetch_endpoints with the token as `preferred`, once more with the other encoding on HTTP 401.

    Returns (endpoints, version, the encoding that worked).
    """
    other = ENCODINGS[1] if preferred == ENCODINGS[0] else ENCODINGS[0]
    try:
        return (*_fetch_endpoints(versions_url, token, preferred), preferred)
    except OcpiClientError as exc:
        if not _is_401(exc):
            raise
    return (*_fetch_endpoints(versions_url, token, other), other)


def _main_role(roles: list[dict]) -> dict:
    return next((r for r in roles if r["role"] == "CPO"), roles[0])


def accept_credentials(party: OcpiParty, payload: object, *, method: str) -> dict:
    """POST (register) or PUT (update) their credentials; returns our new credentials (token C).

    Fetching their endpoints is the one outbound call a web request makes: the spec requires it
    before answering (3001 when it fails). Every role they send is stored; an identity another party
    holds is refused (3001) before any call goes out. Failed exchanges with their API are counted per token: past
    OCPI_CREDENTIALS_MAX_FAILURES the token is locked until an operator issues a new one.
    """
    registered = party.status == OcpiParty.Status.REGISTERED
    if method == "POST" and registered:
        raise MethodNotAllowed("already registered: use PUT to update or DELETE to unregister")
    if method == "PUT" and not registered:
        raise MethodNotAllowed("not registered yet: POST your credentials first")
    if party.token_locked_at is not None:
        raise TokenLocked("too many failed credentials attempts with this token: ask the SCSP's operator "
                          "for a new one")
    creds = validate_credentials(payload)
    check_identities_free(party, creds["roles"])
    # One exchange in flight per token: concurrent attempts would each hold a web thread for up to
    # the outbound deadline before the first failure is even counted.
    busy = f"ocpi:credentials-busy:{party.pk}"
    if not cache.add(busy, 1, timeout=int(4 * settings.OCPI_HTTP_TIMEOUT_S) + 5):
        raise CredentialsBusy("a credentials exchange with this token is already running: retry once it has "
                              "been answered")
    try:
        return _exchange(party, creds)
    finally:
        cache.delete(busy)


def _exchange(party: OcpiParty, creds: dict) -> dict:
    """Fetch their endpoints (a failure counted against the token), then store them and issue token C."""
    try:
        endpoints, version, encoding = _discover_for_caller(creds, party.token_encoding)
    except OcpiError:
        _count_failure(party)  # what is limited: calls we make to where a caller points
        raise
    token_c, role = new_token(), _main_role(creds["roles"])
    with transaction.atomic():
        party = OcpiParty.objects.select_for_update().get(pk=party.pk)
        claim_roles(party, creds["roles"])
        party.token_theirs, party.token_ours_hash, party.token_encoding = creds["token"], hash_token(token_c), encoding
        party.versions_url, party.version, party.endpoints = creds["url"], version, endpoints
        party.country_code, party.party_id, party.role = role["country_code"], role["party_id"], role["role"]
        party.status, party.updated_at = OcpiParty.Status.REGISTERED, clock.now()
        party.save()
        queueing.queue_pulls_after_handshake(party, countdown=FIRST_PULL_AFTER_ANSWER_S)
    cache.delete(_failures_key(party))
    return our_credentials(token_c)


def _discover_for_caller(creds: dict, preferred: str) -> tuple[list[dict], str, str]:
    """_discover, every failure told to the caller as 3001 in our words (never their reply's text)."""
    try:
        return _discover(creds["url"], creds["token"], preferred)
    except OcpiValidationError as exc:
        raise UnableToUseClientApi(f"your version details are invalid: {exc.message}") from None
    except OcpiClientError as exc:
        raise UnableToUseClientApi(str(exc)) from None


def _failures_key(party: OcpiParty) -> str:
    return f"ocpi:credentials-failures:{party.pk}:{party.token_ours_hash}"


def _count_failure(party: OcpiParty) -> None:
    """One more failed credentials attempt with this token (shared cache); lock it past the limit."""
    key = _failures_key(party)
    cache.add(key, 0, timeout=24 * 3600)
    try:
        failures = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=24 * 3600)
        failures = 1
    if failures >= settings.OCPI_CREDENTIALS_MAX_FAILURES:
        OcpiParty.objects.filter(pk=party.pk, token_locked_at__isnull=True).update(token_locked_at=clock.now())
        log.warning("credentials token of %s locked after %s failed attempts", party, failures)


def reissue_token(party: OcpiParty) -> str:
    """A fresh token A for a party that has not registered yet (the old one stops working, a lock goes)."""
    if party.status == OcpiParty.Status.REGISTERED:
        raise MethodNotAllowed(f"{party} is registered: rotate its token with 'update credentials' instead")
    token = new_token()
    OcpiParty.objects.filter(pk=party.pk).update(token_ours_hash=hash_token(token), token_locked_at=None,
                                                 status=OcpiParty.Status.PENDING, updated_at=clock.now())
    return token


def unregister(party: OcpiParty) -> None:
    """DELETE credentials: the party is REVOKED, its token stops working, no call goes to it any more,
    and its identities are free for a new registration."""
    if party.status != OcpiParty.Status.REGISTERED:
        raise MethodNotAllowed("not registered")
    with transaction.atomic():
        OcpiParty.objects.filter(pk=party.pk).update(status=OcpiParty.Status.REVOKED, updated_at=clock.now())
        retire_identities(party)


def register_with(versions_url: str, token_a: str, name: str = "", party: OcpiParty | None = None) -> OcpiParty:
    """We register with a party (its versions URL and the token A it gave us offline).

    `party`: an existing not-yet-registered row to use (the admin action), else a new one is created.
    The token goes base64 (2.2.1) or, after one 401, raw; the party keeps the encoding that worked.
    """
    if party is not None and party.status == OcpiParty.Status.REGISTERED:
        raise MethodNotAllowed(f"{party} is registered already")
    versions_url = url(versions_url, "versions_url")
    endpoints, version, encoding = _discover(versions_url, token_a)
    credentials_url = _credentials_url(endpoints)
    token_b = new_token()
    # Saved as REGISTERED before the POST: the party calls back with token B while answering it,
    # and may push sessions right after. Reverted to PENDING if the POST fails.
    party = party or OcpiParty(name=name or urlparse(versions_url).netloc)
    party.versions_url, party.endpoints, party.token_theirs = versions_url, endpoints, token_a
    party.token_ours_hash, party.status = hash_token(token_b), OcpiParty.Status.REGISTERED
    party.version, party.token_encoding, party.token_locked_at = version, encoding, None
    party.save()
    try:
        answer = call_json("POST", credentials_url, token_a, body=our_credentials(token_b), what="POST credentials",
                           token_encoding=encoding)
        creds = validate_credentials(answer)
        with transaction.atomic():
            claim_roles(party, creds["roles"])
            _store_their_credentials(party, creds)
            queueing.queue_pulls_after_handshake(party)
    except (OcpiClientError, OcpiError) as exc:
        OcpiParty.objects.filter(pk=party.pk).update(status=OcpiParty.Status.PENDING)
        raise OcpiClientError(f"registration failed: {exc}") from None
    return party


def _credentials_url(endpoints: list[dict]) -> str:
    found = next((e["url"] for e in endpoints if e["identifier"] == "credentials"), None)
    if found is None:
        raise NoMatchingEndpoints("the party offers no credentials endpoint")
    return found


def _store_their_credentials(party: OcpiParty, creds: dict) -> None:
    role = _main_role(creds["roles"])
    party.token_theirs, party.country_code, party.party_id = creds["token"], role["country_code"], role["party_id"]
    party.role, party.updated_at = role["role"], clock.now()
    party.save()


def update_credentials(party: OcpiParty) -> OcpiParty:
    """Our credentials PUT to a registered party: a fresh token for them to use (the old one stops
    working once they answer) and our current endpoints; we keep the token and roles they return.

    The command `ocpi_update_credentials` and the admin action both call this.
    """
    if party.status != OcpiParty.Status.REGISTERED:
        raise MethodNotAllowed(f"{party} is not registered")
    credentials_url = _credentials_url(party.endpoints or [])
    token, old_hash = new_token(), party.token_ours_hash
    # The new token works before the PUT: they may fetch our versions with it while answering.
    OcpiParty.objects.filter(pk=party.pk).update(token_ours_hash=hash_token(token), token_locked_at=None)
    try:
        answer = call_json("PUT", credentials_url, party.token_theirs, body=our_credentials(token),
                           what="PUT credentials", token_encoding=party.token_encoding)
        creds = validate_credentials(answer)
        with transaction.atomic():
            party = OcpiParty.objects.select_for_update().get(pk=party.pk)
            claim_roles(party, creds["roles"])
            _store_their_credentials(party, creds)
            queueing.queue_pulls_after_handshake(party)
    except (OcpiClientError, OcpiError) as exc:
        OcpiParty.objects.filter(pk=party.pk).update(token_ours_hash=old_hash)
        raise OcpiClientError(f"credentials update failed: {exc}") from None
    cache.delete(_failures_key(party))
    return party
