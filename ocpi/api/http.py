"""The transport layer of our OCPI endpoints: auth, body limits, JSON parsing, the response envelope.

Plain Django views (no DRF) keep the push intake cheap. `ocpi_view` wraps a handler
`handler(request, party, body, **url_kwargs) -> Reply` and turns every `OcpiError` into the envelope
with its OCPI status code and HTTP status.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from smatch import clock

from ..errors import BodyTooLarge, MalformedRequest, MethodNotAllowed, OcpiError, Unauthorized
from ..models import OcpiParty, hash_token
from ..schemas import format_datetime
from ..services.identity import held_identities, identity_key

log = logging.getLogger(__name__)


@dataclass
class Reply:
    data: Any = None
    http_status: int = 200
    status_code: int = 1000
    status_message: str | None = None
    headers: dict = field(default_factory=dict)


def envelope(data: Any, status_code: int, status_message: str | None) -> dict:
    body: dict[str, Any] = {"status_code": status_code, "timestamp": format_datetime(clock.now())}
    if data is not None:
        body["data"] = data
    if status_message:
        body["status_message"] = status_message
    return body


def token_candidates(header: str) -> list[str]:
    """Tokens a header may carry: 2.2.1 sends base64(token); 2.1.1/2.2 clients send the raw token.

    Trailing whitespace after decoding is dropped (the spec's own example decodes to a trailing newline).
    """
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "token" or not value:
        return []
    candidates = [value]
    try:
        decoded = base64.b64decode(value, validate=True).decode("ascii").rstrip()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    if decoded and decoded.isprintable() and " " not in decoded and decoded != value:
        candidates.insert(0, decoded)
    return candidates


def authenticate(request: HttpRequest, *, allow_pending: bool) -> OcpiParty:
    """The party whose token is in the Authorization header, else 401.

    A PENDING party (holding only a registration token A) may use versions and credentials only.
    """
    candidates = token_candidates(request.headers.get("Authorization", ""))
    if not candidates:
        raise Unauthorized("Authorization header missing or not 'Token <token>'")
    hashes = [hash_token(t) for t in candidates]
    party = party_by_token_hash(hashes)
    if party is None or party.status == OcpiParty.Status.REVOKED:
        raise Unauthorized("unknown or revoked credentials token")
    if party.status == OcpiParty.Status.PENDING and not allow_pending:
        raise Unauthorized("registration token: only versions and credentials may be used before registering")
    request.ocpi_token = candidates[hashes.index(party.token_ours_hash)]
    return party


def party_by_token_hash(hashes: list[str]) -> OcpiParty | None:
    """The party holding one of these token hashes: one indexed SELECT, read afresh on every request.

    Not cached: a per-process cache would need a stamp checked per request (a Redis round trip, the
    same order of cost as this index lookup) and every writer of a party, queryset updates and the
    admin included, bumping it; read afresh, a revoked token is refused by every process at once.
    Raw SQL: the ORM's query compilation cost more CPU than the lookup (bench/request_costs.py).
    """
    q = connection.ops.quote_name
    sql = (f"SELECT * FROM {q(OcpiParty._meta.db_table)} "
           f"WHERE {q('token_ours_hash')} IN ({', '.join(['%s'] * len(hashes))})")
    return next(iter(OcpiParty.objects.raw(sql, hashes)), None)


def read_json(request: HttpRequest) -> Any:
    """The parsed JSON body (None when empty). 413 when over OCPI_MAX_BODY_BYTES, 400 when not JSON."""
    limit = settings.OCPI_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise MalformedRequest("bad Content-Length header") from None
    if declared > limit:
        raise BodyTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    try:
        raw = request.body
    except RequestDataTooBig:
        raise BodyTooLarge(f"body exceeds the limit of {limit} bytes") from None
    if len(raw) > limit:
        raise BodyTooLarge(f"body of {len(raw)} bytes exceeds the limit of {limit} bytes")
    if not raw.strip():
        return None
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedRequest(f"body is not valid JSON: {exc}") from None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def respond(request: HttpRequest, reply: Reply) -> HttpResponse:
    payload = envelope(reply.data, reply.status_code, reply.status_message)
    response = HttpResponse(json.dumps(payload, separators=(",", ":")), status=reply.http_status,
                            content_type="application/json")
    # Every response echoes the request's ids (transport_and_format: unique message IDs).
    response["X-Request-ID"] = request.headers.get("X-Request-ID") or str(uuid.uuid4())
    response["X-Correlation-ID"] = request.headers.get("X-Correlation-ID") or str(uuid.uuid4())
    for name, value in reply.headers.items():
        response[name] = value
    return response


def ocpi_view(methods: dict[str, Callable[..., Reply]], *, allow_pending: bool = False,
              functional: bool = True) -> Callable[..., HttpResponse]:
    """A view dispatching `methods` ({"PUT": handler, ...}) behind auth + JSON + envelope."""

    @csrf_exempt
    @wraps(next(iter(methods.values())))
    def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        party = None
        try:
            handler = methods.get(request.method or "")
            if handler is None:
                raise MethodNotAllowed(f"{request.method} is not allowed here; use {', '.join(methods)}")
            party = authenticate(request, allow_pending=allow_pending)
            body = read_json(request) if request.method in ("POST", "PUT", "PATCH") else None
            reply = handler(request, party, body, **kwargs)
        except OcpiError as exc:
            reply = Reply(None, exc.http_status, exc.status_code, exc.message)
            if isinstance(exc, MethodNotAllowed):
                reply.headers["Allow"] = ", ".join(methods)
        except Exception:
            log.exception("OCPI %s %s failed", request.method, request.path)
            reply = Reply(None, 500, 3000, "internal server error")
        if functional and party is not None:  # error responses carry them too
            reply.headers.update(routing_headers(party, request))
        return respond(request, reply)

    return view


def routing_headers(party: OcpiParty, request: HttpRequest | None = None) -> dict:
    """OCPI-to/from headers for functional modules (to: the caller, from: us).

    A hub sends for several CPOs: the reply goes to the identity in its OCPI-from-* headers when the
    party holds it, else to the party's main identity.
    """
    to_cc, to_pid = party.country_code, party.party_id
    if request is not None:
        sender = (request.headers.get("OCPI-from-country-code", ""), request.headers.get("OCPI-from-party-id", ""))
        held = held_identities(party).get(identity_key(*sender)) if all(sender) else None
        to_cc, to_pid = held or (to_cc, to_pid)
    return {
        "OCPI-to-country-code": to_cc,
        "OCPI-to-party-id": to_pid,
        "OCPI-from-country-code": settings.OCPI_COUNTRY_CODE,
        "OCPI-from-party-id": settings.OCPI_PARTY_ID,
    }


@csrf_exempt
def not_found(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return respond(request, Reply(None, 404, 2000, f"no OCPI endpoint at {request.path}"))
