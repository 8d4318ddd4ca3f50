"""Outbound OCPI 2.2.1 client (we are the SCSP; the CPO implements the Receiver/Sender interfaces).

Every call goes through `smatch.outbound` (allowed schemes and addresses, no redirects, a total
deadline per call, a reply size cap). `call_json` serves calls without a registered party (the
credentials handshake); `client_for(party)` returns a per-process `OcpiClient` for a registered
one. `fan_out` is the product's critical path (thousands of PUTs in seconds): asyncio over up to
OCPI_HTTP_POOL_SIZE keep-alive connections, no ORM inside; `services.sending` owns the rows.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import aiohttp
from django.conf import settings

from smatch import clock, outbound

from .errors import OcpiClientError, OcpiValidationError
from .schemas import validate_profile_response

log = logging.getLogger(__name__)

MAX_PAGES = 100_000  # a CPO whose Link headers loop forever must not hang a worker

# The one retry rule (issue: one rule for retrying). Final = never retried.
ACCEPTED, REFUSED, RETRY = "accepted", "refused", "retry"


def ocpi_datetime(when: datetime) -> str:
    """OCPI DateTime (string(25)): UTC, `Z`, seconds, or milliseconds when there is a fraction."""
    when = when.astimezone(UTC)
    spec = "milliseconds" if when.microsecond else "seconds"
    return when.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def response_url_for(call_id: uuid.UUID | str) -> str:
    """Our Sender-interface URL for the async result of one call (unique per call)."""
    return f"{settings.OCPI_BASE_URL}/2.2.1/chargingprofiles/results/{call_id}"


def build_set_charging_profile(call_id: uuid.UUID, limit_a: float, start_date_time: datetime,
                               duration_s: int) -> dict:
    """A SetChargingProfile capping every phase at `limit_a` from `start_date_time` for `duration_s`.

    start_date_time + duration make the CSMS fall back to normal charging by itself (fail-safe).
    """
    return {
        "charging_profile": {
            "start_date_time": ocpi_datetime(start_date_time),
            "duration": int(duration_s),
            "charging_rate_unit": "A",
            # OCPI: limits accept at most one decimal.
            "charging_profile_period": [{"start_period": 0, "limit": round(float(limit_a), 1)}],
        },
        "response_url": response_url_for(call_id),
    }


@dataclass(frozen=True)
class OutboundCall:
    """One chargingprofiles call. SET needs `set_charging_profile`, GET needs `duration_s`.

    `to_country_code` / `to_party_id`: the session's own owner, for the OCPI-to-* routing headers
    (a hub forwards the sessions of several CPOs).
    """

    call_id: uuid.UUID
    kind: str  # SET / CLEAR / GET
    session_id: str  # the CPO's Session.id
    set_charging_profile: dict | None = None
    duration_s: int | None = None
    to_country_code: str = ""
    to_party_id: str = ""


@dataclass(frozen=True)
class CallOutcome:
    call_id: uuid.UUID
    http_status: int | None
    ocpi_status_code: int | None
    result: str  # ChargingProfileResponseType, or "ERROR" (transport / HTTP / OCPI error)
    timeout_s: int | None
    error: str
    sent_at: datetime
    answered_at: datetime

    @property
    def disposition(self) -> str:
        """The one retry rule: ACCEPTED is accepted; HTTP 5xx, timeouts, connection errors and
        TOO_OFTEN are worth another try (with a growing delay); every other answer is final."""
        if self.result == "ACCEPTED":
            return ACCEPTED
        if self.result == "TOO_OFTEN":
            return RETRY
        if self.result == "ERROR" and (self.http_status is None or self.http_status >= 500):
            return RETRY if not self.error.startswith(POLICY_PREFIX) else REFUSED
        return REFUSED

    @property
    def is_transient(self) -> bool:
        return self.disposition == RETRY


POLICY_PREFIX = "refused by policy: "  # an error that no retry can cure (final)


class CallFailed(OcpiClientError):
    """An outbound call failed: `reason` is short and safe to show ("timeout", "HTTP 401", "OCPI status
    2001", "address not allowed"); `http_status` is the HTTP status when there was an answer."""

    def __init__(self, what: str, reason: str, *, transient: bool = False, http_status: int | None = None,
                 too_large: bool = False) -> None:
        super().__init__(f"{what}: {reason}", transient=transient)
        self.reason = reason
        self.http_status = http_status
        self.too_large = too_large  # the reply exceeded OUTBOUND_MAX_BYTES (a smaller page may fit)


def auth_header(token: str, encoding: str = "base64") -> str:
    """OCPI 2.2.1: `Authorization: Token <base64(token)>`; some 2.2.x platforms want the raw token."""
    if encoding == "raw":
        return f"Token {token}"
    return "Token " + base64.b64encode(token.encode("ascii")).decode("ascii")


def _request_ids() -> dict:
    rid = str(uuid.uuid4())
    return {"X-Request-ID": rid, "X-Correlation-ID": rid}


def _unwrap(reply: outbound.Reply, what: str) -> Any:
    """The `data` of an OCPI envelope, or CallFailed (transient for HTTP 5xx)."""
    return _envelope(reply, what).get("data")


def envelope_time(envelope: dict) -> datetime | None:
    """The envelope's `timestamp` as an aware datetime, or None when missing or unreadable."""
    stamp = envelope.get("timestamp")
    if not isinstance(stamp, str):
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def _envelope(reply: outbound.Reply, what: str) -> dict:
    """A successful OCPI envelope, or CallFailed (transient for HTTP 5xx).

    The message names the failure, never the other party's own text (it would let a caller read
    whatever answered through us).
    """
    if reply.status >= 300:
        note = " (redirects are not followed)" if reply.status < 400 else ""
        raise CallFailed(what, f"HTTP {reply.status}{note}", transient=reply.status >= 500, http_status=reply.status)
    try:
        body = json.loads(reply.body)
    except ValueError:
        raise CallFailed(what, "the reply is not JSON", http_status=reply.status) from None
    if not isinstance(body, dict) or not isinstance(body.get("status_code"), int):
        raise CallFailed(what, "the reply is not an OCPI envelope", http_status=reply.status)
    if not 1000 <= body["status_code"] < 2000:
        raise CallFailed(what, f"OCPI status {body['status_code']}", transient=body["status_code"] >= 3000,
                         http_status=reply.status)
    return body


def _fetch(method: str, url: str, headers: dict, body: Any, what: str) -> outbound.Reply:
    data = outbound.json_body(body) if body is not None else None
    if data is not None:
        headers = {**headers, "Content-Type": "application/json"}
    try:
        return outbound.request_sync(method, url, headers=headers, data=data)
    except outbound.OutboundRefused as exc:
        raise CallFailed(what, exc.reason, transient=exc.transient,
                         too_large=exc.reason.startswith(outbound.TOO_LARGE)) from None


def call_json(method: str, url: str, token: str, *, body: Any = None, what: str,
              token_encoding: str = "base64") -> Any:
    """One OCPI call without a party (registration): returns `data` or raises OcpiClientError."""
    headers = {"Authorization": auth_header(token, token_encoding), **_request_ids()}
    return _unwrap(_fetch(method, url, headers, body, what), what)


def join_url(base: str, *segments: str) -> str:
    """`base` exactly as the party advertised it, then the URL-quoted segments."""
    tail = "/".join(quote(s, safe="") for s in segments)
    return base + tail if base.endswith("/") else f"{base}/{tail}"


def _with_query(url: str, params: dict) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


DEFAULT_PAGE_LIMIT = 100  # what we assume a Sender used when its URL names no limit


def _query_int(url: str, name: str) -> int | None:
    """A whole-number query parameter of `url` (`limit`, `offset`), None when absent or not a number."""
    value = dict(parse_qsl(urlsplit(url).query)).get(name)
    return int(value) if value is not None and value.isdigit() else None


def _with_param(url: str, name: str, value: int) -> str:
    """`url` with the query parameter `name` set to `value` (the others kept as they are)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    return urlunsplit(parts._replace(query=urlencode([*query, (name, str(value))])))


def _total_count(headers) -> int | None:
    """X-Total-Count of a paginated reply (headers are case-insensitive), None when absent or not a count."""
    for name, value in headers.items():
        if name.lower() == "x-total-count":
            return int(value) if str(value).strip().isdigit() else None
    return None


# The share of a page asked again with the next one (see OcpiClient.iter_pages): 10 objects a page of 100.
PAGE_OVERLAP = 0.1


def _next_page(asked: str, linked: str, page_len: int, missed: int) -> tuple[str, int]:
    """The URL of the page after `asked` (which held `page_len` objects), and how many places before
    the linked offset it starts. `missed`: objects that left before this page and that the overlap
    did not cover: the page is asked again from that many places earlier (at most half a page, so
    that paging goes on whatever leaves). The CPO's link is kept as it is when it has no offset."""
    offset, linked_offset = _query_int(asked, "offset"), _query_int(linked, "offset")
    if offset is None or linked_offset is None:
        return linked, 0
    base = offset - min(missed, max(1, page_len // 2)) if missed > 0 else linked_offset
    start = max(0, base - int(page_len * PAGE_OVERLAP))
    if start == linked_offset:
        return linked, 0
    return _with_param(linked, "offset", start), base - start


def _object_key(item: object) -> tuple | None:
    """What makes an object of a list the same object: its ids and its last update."""
    if not isinstance(item, dict):
        return None
    return tuple(str(item.get(k)) for k in ("country_code", "party_id", "id", "last_updated"))


class OcpiClient:
    """Calls to one registered party. Built from a snapshot of the party; safe to share across threads."""

    def __init__(self, *, token: str, endpoints: list, country_code: str, party_id: str, pool_size: int,
                 token_encoding: str = "base64") -> None:
        self.pool_size = pool_size
        self.endpoints = endpoints
        self.country_code, self.party_id = country_code, party_id
        self.auth = auth_header(token, token_encoding)
        # (their envelope timestamp, our clock at receipt) of the last page read: the clock skew.
        self.last_envelope: tuple[datetime, datetime] | None = None

    def endpoint(self, identifier: str, role: str) -> str:
        """The URL of their module exactly as advertised (no slash added or stripped)."""
        for endpoint in self.endpoints:
            if endpoint.get("identifier") == identifier and endpoint.get("role") == role:
                return endpoint["url"]
        raise OcpiClientError(f"the party offers no {identifier} {role} endpoint")

    def _headers(self, to_country_code: str = "", to_party_id: str = "") -> dict:
        return {
            "Authorization": self.auth,
            "OCPI-from-country-code": settings.OCPI_COUNTRY_CODE,
            "OCPI-from-party-id": settings.OCPI_PARTY_ID,
            "OCPI-to-country-code": to_country_code or self.country_code,
            "OCPI-to-party-id": to_party_id or self.party_id,
            **_request_ids(),
        }

    # --- chargingprofiles (their Receiver interface) ------------------------------------------------
    def request_for(self, call: OutboundCall) -> tuple[str, str, bytes | None]:
        """(method, absolute URL, body) of one chargingprofiles call."""
        url = join_url(self.endpoint("chargingprofiles", "RECEIVER"), call.session_id)
        response_url = response_url_for(call.call_id)
        if call.kind == "SET":
            if not call.set_charging_profile:
                raise OcpiClientError("SET needs set_charging_profile")
            return "PUT", url, outbound.json_body(call.set_charging_profile)
        if call.kind == "CLEAR":
            return "DELETE", _with_query(url, {"response_url": response_url}), None
        if call.kind == "GET":
            if not call.duration_s:
                raise OcpiClientError("GET needs duration_s")
            return "GET", _with_query(url, {"duration": call.duration_s, "response_url": response_url}), None
        raise OcpiClientError(f"unknown call kind {call.kind!r}")

    def fan_out(self, calls: Sequence[OutboundCall], max_workers: int = 32) -> list[CallOutcome]:
        """Make many calls concurrently over keep-alive connections; outcomes in call order.

        asyncio + aiohttp rather than a thread pool: its C HTTP parser costs a fraction of the CPU
        per call of urllib3 in threads, and the fan-out is CPU-bound on a small machine. Never
        raises for transport/HTTP/OCPI errors: they become outcomes with result "ERROR".
        """
        if not calls:
            return []
        connections = max(1, min(max_workers, self.pool_size, len(calls)))
        return asyncio.run(self._fan_out(calls, connections))

    async def _fan_out(self, calls: Sequence[OutboundCall], connections: int) -> list[CallOutcome]:
        outcomes: list[CallOutcome | None] = [None] * len(calls)
        pending = iter(range(len(calls)))  # shared by the connection loops: each takes the next call
        async with outbound.new_session(connections) as http:
            async def loop() -> None:
                for index in pending:
                    outcomes[index] = await self._call_async(http, calls[index])

            await asyncio.gather(*(loop() for _ in range(connections)))
        return outcomes  # type: ignore[return-value]

    async def _call_async(self, http: aiohttp.ClientSession, call: OutboundCall) -> CallOutcome:
        sent_at = clock.now()
        try:
            method, url, data = self.request_for(call)
            headers = self._headers(call.to_country_code, call.to_party_id)
            if data is not None:
                headers["Content-Type"] = "application/json"
            reply = await outbound.request(http, method, url, headers=headers, data=data)
        except outbound.OutboundRefused as exc:
            error = exc.reason if exc.transient else POLICY_PREFIX + exc.reason
            return CallOutcome(call.call_id, None, None, "ERROR", None, error, sent_at, clock.now())
        except OcpiClientError as exc:
            return CallOutcome(call.call_id, None, None, "ERROR", None, POLICY_PREFIX + str(exc), sent_at,
                               clock.now())
        return _outcome(call.call_id, reply.status, reply.body, sent_at, clock.now())

    # --- their Sender interfaces (sessions, locations) ---------------------------------------------------
    def iter_pages(self, url: str, params: dict | None = None, what: str = "GET") -> Iterator[dict]:
        """Every object of a paginated Sender list, following `Link: <...>; rel="next"`.

        A page larger than OUTBOUND_MAX_BYTES (sessions with long charging_periods) is asked again with
        half the `limit`, down to one object; later pages keep the smaller limit (the spec lets the
        client choose `limit`, and the next link normally repeats ours).

        With `date_to` set, objects leave the list while we page through it (one updated after
        `date_to` drops out); each one that left before our offset shifts the rest down by one, and
        following the next link alone would skip as many. So each page is asked from PAGE_OVERLAP of
        a page before the linked offset, and when X-Total-Count fell by more than that since the page
        before, that page is asked again from as many places earlier (`_next_page`): the overlap
        also covers a leaver that a session joining meanwhile (stamped before `date_to`, stored by
        the CPO after it) hides from the total. Objects read twice are yielded once. The ones that
        left are newer than `date_to`: the next pull has them.
        """
        next_url: str | None = _with_query(url, params) if params else url
        fits: int | None = None  # the largest limit known to fit, once a page was too large
        total: int | None = None  # X-Total-Count of the page before
        overlap = 0  # how many places before the end of the page before this one was asked from
        seen: tuple[set, set] = (set(), set())  # objects of the two pages before: a page asked again yields each once
        for _ in range(MAX_PAGES):
            if next_url is None:
                return
            if fits is not None:
                next_url = _with_param(next_url, "limit", min(fits, _query_int(next_url, "limit") or fits))
            try:
                reply = _fetch("GET", next_url, self._headers(), None, what)
            except CallFailed as exc:
                asked = _query_int(next_url, "limit") or DEFAULT_PAGE_LIMIT
                if not exc.too_large or asked <= 1:
                    raise
                fits = asked // 2
                continue
            envelope = _envelope(reply, what)
            theirs = envelope_time(envelope)
            if theirs is not None:
                self.last_envelope = (theirs, clock.now())
            page = envelope.get("data")
            if not isinstance(page, list):
                raise CallFailed(what, "data is not a list", http_status=reply.status)
            keys = [_object_key(item) for item in page]
            yield from (item for item, key in zip(page, keys, strict=True)
                        if key is None or (key not in seen[0] and key not in seen[1]))
            seen = (seen[1], {key for key in keys if key is not None})
            now_total = _total_count(reply.headers)
            left = total - now_total if total is not None and now_total is not None else 0
            total = now_total
            if left > overlap:
                log.info("%s: %d objects left the list between two pages; asking from earlier", what, left)
            # The next link carries all filters itself (transport_and_format: pagination).
            if not page or reply.next_url is None:
                next_url = None
            else:
                next_url, overlap = _next_page(next_url, reply.next_url, len(page), max(0, left - overlap))
        raise CallFailed(what, f"more than {MAX_PAGES} pages, giving up")

    def iter_sessions(self, date_from: datetime, date_to: datetime | None = None,
                      page_limit: int = 100) -> Iterator[dict]:
        """Every Session object last updated in [date_from, date_to)."""
        params: dict = {"date_from": ocpi_datetime(date_from), "offset": 0, "limit": page_limit}
        if date_to is not None:
            params["date_to"] = ocpi_datetime(date_to)
        yield from self.iter_pages(self.endpoint("sessions", "SENDER"), params, "GET sessions")


def _outcome(call_id: uuid.UUID, http_status: int, raw: bytes, sent_at: datetime, answered_at: datetime
             ) -> CallOutcome:
    status_code, error, result, timeout_s = None, "", "ERROR", None
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("status_code"), int):
        status_code = body["status_code"]
    if http_status >= 300 or status_code is None or not 1000 <= status_code < 2000:
        # Kept for the operator (admin), never returned to a caller; bounded like the reply itself.
        message = body.get("status_message", "") if isinstance(body, dict) else ""
        error = f"HTTP {http_status}, OCPI status {status_code}: {str(message)[:200]}"
    else:
        try:
            result, timeout_s = validate_profile_response(body.get("data"))
        except OcpiValidationError as exc:
            error = f"bad ChargingProfileResponse: {exc.message}"
    return CallOutcome(call_id, http_status, status_code, result, timeout_s, error, sent_at, answered_at)


_clients: dict[tuple, OcpiClient] = {}
_clients_lock = threading.Lock()


def client_for(party) -> OcpiClient:
    """The per-process client of `party` (rebuilt when its token, encoding or endpoints change)."""
    encoding = getattr(party, "token_encoding", "base64") or "base64"
    key = (party.pk, party.token_theirs, encoding, json.dumps(party.endpoints, sort_keys=True),
           party.country_code, party.party_id)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            for stale in [k for k in _clients if k[0] == party.pk]:
                _clients.pop(stale)
            client = OcpiClient(token=party.token_theirs, endpoints=list(party.endpoints or []),
                                country_code=party.country_code, party_id=party.party_id,
                                pool_size=settings.OCPI_HTTP_POOL_SIZE, token_encoding=encoding)
            _clients[key] = client
        return client
