"""Outbound OCPI 2.2.1 client (we are the SCSP; the CPO implements the Receiver/Sender interfaces).

`client_for(party)` returns a per-process cached `OcpiClient` over one `requests.Session` whose
pooled HTTPAdapter keeps up to settings.OCPI_HTTP_POOL_SIZE keep-alive connections. `fan_out` is the
product's critical path (thousands of PUTs in seconds): asyncio over up to that many keep-alive
connections, no ORM inside; the caller bulk-writes the outcomes (`services.record_outcomes`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import requests
import urllib3
import yarl
from django.conf import settings
from requests.adapters import HTTPAdapter

from smatch import clock

from .errors import OcpiClientError, OcpiValidationError
from .schemas import format_datetime, validate_profile_response

TRANSIENT_RESULTS = frozenset({"TOO_OFTEN"})
MAX_PAGES = 100_000  # a CPO whose Link headers loop forever must not hang a worker


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
            "start_date_time": format_datetime(start_date_time),
            "duration": int(duration_s),
            "charging_rate_unit": "A",
            # OCPI: limits accept at most one decimal.
            "charging_profile_period": [{"start_period": 0, "limit": round(float(limit_a), 1)}],
        },
        "response_url": response_url_for(call_id),
    }


@dataclass(frozen=True)
class OutboundCall:
    """One chargingprofiles call to make. SET needs `set_charging_profile`, GET needs `duration_s`."""

    call_id: uuid.UUID
    kind: str  # SET / CLEAR / GET
    session_id: str  # the CPO's Session.id
    set_charging_profile: dict | None = None
    duration_s: int | None = None


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
    def is_transient(self) -> bool:
        """Worth retrying later: HTTP 5xx, timeouts / connection errors, TOO_OFTEN."""
        if self.result in TRANSIENT_RESULTS:
            return True
        return self.result == "ERROR" and (self.http_status is None or self.http_status >= 500)


def auth_header(token: str) -> str:
    """OCPI 2.2.1: `Authorization: Token <base64(token)>`."""
    return "Token " + base64.b64encode(token.encode("ascii")).decode("ascii")


USER_AGENT = "smatch-scsp/0.1"


def _new_session(pool_size: int) -> requests.Session:
    http = requests.Session()
    # pool_block: never open more connections than the pool holds; threads wait for a free one.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0, pool_block=True)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    http.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
    return http


_bare_lock = threading.Lock()
_bare_http: requests.Session | None = None


def _bare() -> requests.Session:
    """A shared session for calls without a registered party (the credentials handshake)."""
    global _bare_http
    with _bare_lock:
        if _bare_http is None:
            _bare_http = _new_session(4)
        return _bare_http


def _request_ids() -> dict:
    rid = str(uuid.uuid4())
    return {"X-Request-ID": rid, "X-Correlation-ID": rid}


def unwrap(response: requests.Response, what: str) -> Any:
    """The `data` of an OCPI envelope, or OcpiClientError (transient for HTTP 5xx)."""
    if response.status_code >= 400:
        raise OcpiClientError(f"{what}: HTTP {response.status_code} {response.text[:200]}",
                              transient=response.status_code >= 500)
    try:
        body = response.json()
    except ValueError:
        raise OcpiClientError(f"{what}: response is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("status_code"), int):
        raise OcpiClientError(f"{what}: response is not an OCPI envelope")
    if not 1000 <= body["status_code"] < 2000:
        raise OcpiClientError(f"{what}: OCPI status {body['status_code']} {body.get('status_message', '')}",
                              transient=body["status_code"] >= 3000)
    return body.get("data")


def call_json(method: str, url: str, token: str, *, body: Any = None, what: str) -> Any:
    """One OCPI call without a party (registration): returns `data` or raises OcpiClientError."""
    headers = {"Authorization": auth_header(token), **_request_ids()}
    try:
        response = _bare().request(method, url, json=body, headers=headers, timeout=settings.OCPI_HTTP_TIMEOUT_S)
    except requests.RequestException as exc:
        raise OcpiClientError(f"{what}: {exc.__class__.__name__}: {exc}", transient=True) from None
    return unwrap(response, what)


class OcpiClient:
    """Calls to one registered party. Built from a snapshot of the party; safe to share across threads."""

    def __init__(self, *, token: str, endpoints: list, country_code: str, party_id: str, pool_size: int) -> None:
        self.http = _new_session(pool_size)
        self.pool_size = pool_size
        self.endpoints = endpoints
        self.timeout_s = settings.OCPI_HTTP_TIMEOUT_S
        self._timeout = urllib3.Timeout(connect=self.timeout_s, read=self.timeout_s)
        self._profiles_pool: urllib3.HTTPConnectionPool | None = None
        self.base_headers = {
            "Authorization": auth_header(token),
            "OCPI-from-country-code": settings.OCPI_COUNTRY_CODE,
            "OCPI-from-party-id": settings.OCPI_PARTY_ID,
            "OCPI-to-country-code": country_code,
            "OCPI-to-party-id": party_id,
        }

    def endpoint(self, identifier: str, role: str) -> str:
        for endpoint in self.endpoints:
            if endpoint.get("identifier") == identifier and endpoint.get("role") == role:
                return endpoint["url"].rstrip("/")
        raise OcpiClientError(f"the party offers no {identifier} {role} endpoint")

    def _headers(self) -> dict:
        return {**self.base_headers, **_request_ids()}

    # --- chargingprofiles (their Receiver interface) ------------------------------------------------
    def put_charging_profile(self, session_id: str, set_charging_profile: dict) -> CallOutcome:
        call_id = _call_id_from(set_charging_profile.get("response_url", ""))
        return self.call(OutboundCall(call_id, "SET", session_id, set_charging_profile=set_charging_profile))

    def delete_charging_profile(self, session_id: str, response_url: str) -> CallOutcome:
        return self.call(OutboundCall(_call_id_from(response_url), "CLEAR", session_id))

    def get_active_charging_profile(self, session_id: str, duration_s: int, response_url: str) -> CallOutcome:
        return self.call(OutboundCall(_call_id_from(response_url), "GET", session_id, duration_s=duration_s))

    def call(self, call: OutboundCall) -> CallOutcome:
        """Make one call; never raises for transport/HTTP/OCPI errors (they become result "ERROR").

        Single calls talk to the urllib3 pool under the session's HTTPAdapter directly,
        which costs a fraction of a full `requests` round (hooks, cookies, settings merging) per call.
        """
        sent_at = clock.now()
        try:
            method, path, data = self._request_for(call)
            headers = self._headers()
            if data is not None:
                headers["Content-Type"] = "application/json"
            response = self._pool().urlopen(method, path, body=data, headers=headers, retries=False,
                                            redirect=False, timeout=self._timeout, assert_same_host=False)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return CallOutcome(call.call_id, None, None, "ERROR", None, f"{exc.__class__.__name__}: {exc}",
                               sent_at, clock.now())
        except OcpiClientError as exc:
            return CallOutcome(call.call_id, None, None, "ERROR", None, str(exc), sent_at, clock.now())
        return _outcome(call.call_id, response.status, response.data, sent_at, clock.now())

    def _pool(self) -> urllib3.HTTPConnectionPool:
        if self._profiles_pool is None:
            url = self.endpoint("chargingprofiles", "RECEIVER")
            adapter = self.http.get_adapter(url)
            self._profiles_pool = adapter.poolmanager.connection_from_url(url)
        return self._profiles_pool

    def _request_for(self, call: OutboundCall) -> tuple[str, str, bytes | None]:
        """(method, request target path?query, body) of one chargingprofiles call."""
        base = urlsplit(self.endpoint("chargingprofiles", "RECEIVER")).path.rstrip("/")
        path = f"{base}/{quote(call.session_id, safe='')}"
        response_url = response_url_for(call.call_id)
        if call.kind == "SET":
            if not call.set_charging_profile:
                raise OcpiClientError("SET needs set_charging_profile")
            return "PUT", path, json.dumps(call.set_charging_profile, separators=(",", ":")).encode()
        if call.kind == "CLEAR":
            return "DELETE", f"{path}?{urlencode({'response_url': response_url})}", None
        if call.kind == "GET":
            if not call.duration_s:
                raise OcpiClientError("GET needs duration_s")
            return "GET", f"{path}?{urlencode({'duration': call.duration_s, 'response_url': response_url})}", None
        raise OcpiClientError(f"unknown call kind {call.kind!r}")

    def fan_out(self, calls: Sequence[OutboundCall], max_workers: int = 32) -> list[CallOutcome]:
        """Make many calls concurrently over keep-alive connections; outcomes in call order.

        asyncio + aiohttp rather than a thread pool: its C HTTP parser costs a fraction of the CPU
        per call of urllib3 in threads, and the fan-out is CPU-bound on a small machine.
        """
        if not calls:
            return []
        connections = max(1, min(max_workers, self.pool_size, len(calls)))
        return asyncio.run(self._fan_out(calls, connections))

    async def _fan_out(self, calls: Sequence[OutboundCall], connections: int) -> list[CallOutcome]:
        parts = urlsplit(self.endpoint("chargingprofiles", "RECEIVER"))
        timeout = aiohttp.ClientTimeout(sock_connect=self.timeout_s, sock_read=self.timeout_s)
        connector = aiohttp.TCPConnector(limit=connections)
        outcomes: list[CallOutcome | None] = [None] * len(calls)
        pending = iter(range(len(calls)))  # shared by the connection loops: each takes the next call

        async with aiohttp.ClientSession(f"{parts.scheme}://{parts.netloc}", connector=connector, timeout=timeout,
                                         headers={"Accept": "application/json", "User-Agent": USER_AGENT}) as http:
            async def loop() -> None:
                for index in pending:
                    outcomes[index] = await self._call_async(http, calls[index])

            await asyncio.gather(*(loop() for _ in range(connections)))
        return outcomes  # type: ignore[return-value]

    async def _call_async(self, http: aiohttp.ClientSession, call: OutboundCall) -> CallOutcome:
        sent_at = clock.now()
        try:
            method, path, data = self._request_for(call)
            headers = self._headers()
            if data is not None:
                headers["Content-Type"] = "application/json"
            async with http.request(method, yarl.URL(path, encoded=True), data=data, headers=headers,
                                    allow_redirects=False) as response:
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return CallOutcome(call.call_id, None, None, "ERROR", None, f"{exc.__class__.__name__}: {exc}",
                               sent_at, clock.now())
        except OcpiClientError as exc:
            return CallOutcome(call.call_id, None, None, "ERROR", None, str(exc), sent_at, clock.now())
        return _outcome(call.call_id, response.status, raw, sent_at, clock.now())

    # --- sessions (their Sender interface) --------------------------------------------------------------
    def iter_sessions(self, date_from: datetime, date_to: datetime | None = None,
                      page_limit: int = 100) -> Iterator[dict]:
        """Every Session object last updated in [date_from, date_to), following `Link: <...>; rel="next"`."""
        url: str | None = self.endpoint("sessions", "SENDER")
        params: dict | None = {"date_from": format_datetime(date_from), "offset": 0, "limit": page_limit}
        if date_to is not None and params is not None:
            params["date_to"] = format_datetime(date_to)
        for _ in range(MAX_PAGES):
            if url is None:
                return
            try:
                response = self.http.get(url, params=params, headers=self._headers(), timeout=self.timeout_s)
            except requests.RequestException as exc:
                raise OcpiClientError(f"GET sessions: {exc.__class__.__name__}: {exc}", transient=True) from None
            page = unwrap(response, "GET sessions")
            if not isinstance(page, list):
                raise OcpiClientError("GET sessions: data is not a list")
            yield from page
            # The next link carries all filters itself (transport_and_format: pagination).
            url, params = response.links.get("next", {}).get("url"), None
            if not page:
                return
        raise OcpiClientError(f"GET sessions: more than {MAX_PAGES} pages, giving up")


def _call_id_from(response_url: str) -> uuid.UUID:
    try:
        return uuid.UUID(response_url.rstrip("/").rsplit("/", 1)[-1])
    except ValueError:
        raise ValueError(f"response_url must end with the call's UUID (see response_url_for): {response_url}") from None


def _outcome(call_id: uuid.UUID, http_status: int, raw: bytes, sent_at: datetime, answered_at: datetime
             ) -> CallOutcome:
    status_code, error, result, timeout_s = None, "", "ERROR", None
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("status_code"), int):
        status_code = body["status_code"]
    if http_status >= 400 or status_code is None or not 1000 <= status_code < 2000:
        message = body.get("status_message", "") if isinstance(body, dict) else raw[:200].decode("utf-8", "replace")
        error = f"HTTP {http_status}, OCPI status {status_code}: {message}"
    else:
        try:
            result, timeout_s = validate_profile_response(body.get("data"))
        except OcpiValidationError as exc:
            error = f"bad ChargingProfileResponse: {exc.message}"
    return CallOutcome(call_id, http_status, status_code, result, timeout_s, error, sent_at, answered_at)


_clients: dict[tuple, OcpiClient] = {}
_clients_lock = threading.Lock()


def client_for(party) -> OcpiClient:
    """The per-process client of `party` (rebuilt when its token or endpoints change)."""
    key = (party.pk, party.token_theirs, json.dumps(party.endpoints, sort_keys=True),
           party.country_code, party.party_id)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            for stale in [k for k in _clients if k[0] == party.pk]:
                _clients.pop(stale).http.close()
            client = OcpiClient(token=party.token_theirs, endpoints=list(party.endpoints or []),
                                country_code=party.country_code, party_id=party.party_id,
                                pool_size=settings.OCPI_HTTP_POOL_SIZE)
            _clients[key] = client
        return client
