"""HTTP handlers of the simulated CPO platform (OCPI 2.2.1, CPO role)."""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from simulator import ocpi
from simulator.ocpi import OcpiError
from simulator.population import single_phase_stations
from simulator.profiles import active_profile, parse_set_charging_profile, to_deci_amps
from simulator.registration import RegistrationError, fetch_peer

if TYPE_CHECKING:
    from simulator.server import SimulatorServer

JSON = "application/json"
MAX_PAGE = 100
FUNCTIONAL = web.RequestKey("functional", bool)  # a Functional Module request: routing headers apply
RESPONSE_FAULTS = ("REJECTED", "TOO_OFTEN", "NOT_SUPPORTED", "UNKNOWN_SESSION")


class CpoApi:
    def __init__(self, server: SimulatorServer) -> None:
        self.s = server

    # --- plumbing ---------------------------------------------------------------------------
    def reply(self, data: Any = None, status_code: int = 1000, http_status: int = 200, message: str | None = None,
              headers: dict[str, str] | None = None, request: web.Request | None = None) -> web.Response:
        hdrs = dict(headers or {})
        if request is not None:  # echo the tracing headers (transport_and_format)
            for name in ("X-Request-ID", "X-Correlation-ID"):
                if name in request.headers:
                    hdrs[name] = request.headers[name]
            if request.get(FUNCTIONAL):  # a response travels back: to = who asked, from = who answers
                for a, b in (("to", "from"), ("from", "to")):
                    for part in ("country-code", "party-id"):
                        value = request.headers.get(f"OCPI-{b}-{part}")
                        if value:
                            hdrs[f"OCPI-{a}-{part}"] = value
        return web.Response(body=ocpi.envelope(self.s.now(), data, status_code, message), status=http_status,
                            content_type=JSON, headers=hdrs)

    def authorize(self, request: web.Request, registration: bool = False) -> None:
        """401 unless the token is the peer's, in this platform's encoding; token A only opens
        versions, details and credentials. Functional modules then check the routing headers."""
        valid = {self.s.peer.token_ours} - {""}
        if registration and self.s.token_a:
            valid.add(self.s.token_a)
        offered = ocpi.tokens_in_header(request.headers.get("Authorization"), self.s.behaviour.token_encoding)
        if not any(tok in valid for tok in offered):
            raise OcpiError(401, 2000, "missing or unknown credentials token")
        if not registration:
            request[FUNCTIONAL] = True
            self.check_routing(request)

    def check_routing(self, request: web.Request) -> None:
        """transport_and_format, Message Routing: a direct request names the receiving party in
        OCPI-to-* and the requesting one in OCPI-from-*. With `check_routing`, a request that names
        a party this platform does not hold, or a sender other than the registered peer, is refused."""
        if not self.s.behaviour.check_routing:
            return
        h = request.headers
        to = (h.get("OCPI-to-country-code", ""), h.get("OCPI-to-party-id", ""))
        ours = [(cc, pid) for _, cc, pid in self.s.our_roles()]
        if not any(to[0].upper() == cc.upper() and to[1].upper() == pid.upper() for cc, pid in ours):
            self.s.stats.routing_refused += 1
            if self.s.behaviour.hub:
                raise OcpiError(404, 4001, f"OCPI-to-* {to[0]}/{to[1]}: no such party behind this hub")
            raise OcpiError(400, 2001, f"OCPI-to-* {to[0]}/{to[1]} is not a party of this platform")
        if not self.s.peer.holds(h.get("OCPI-from-country-code"), h.get("OCPI-from-party-id")):
            self.s.stats.routing_refused += 1
            raise OcpiError(400, 2001, "OCPI-from-* does not name the party registered with this token")

    def addressed_cpo(self, request: web.Request) -> tuple[str, str] | None:
        """On a Hub, the CPO named in OCPI-to-* (None: the Hub itself, or no header: all of them)."""
        if not self.s.behaviour.hub:
            return None
        h = request.headers
        to = (h.get("OCPI-to-country-code", "").upper(), h.get("OCPI-to-party-id", "").upper())
        return next(((cc, pid) for cc, pid in self.s.config.cpo_parties() if (cc.upper(), pid.upper()) == to), None)

    @staticmethod
    async def body(request: web.Request) -> Any:
        try:
            return json.loads(await request.read())
        except ValueError as exc:
            raise OcpiError(400, 2001, f"body is not valid JSON: {exc}") from exc

    @web.middleware
    async def errors(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except OcpiError as exc:
            return self.reply(None, exc.status_code, exc.http_status, exc.message, request=request)

    # --- versions and credentials -----------------------------------------------------------
    async def versions(self, request: web.Request) -> web.Response:
        self.authorize(request, registration=True)
        return self.reply([{"version": ocpi.VERSION, "url": f"{self.s.base_url}/{ocpi.VERSION}"}], request=request)

    async def details(self, request: web.Request) -> web.Response:
        self.authorize(request, registration=True)
        base = f"{self.s.base_url}/{ocpi.VERSION}"
        endpoints = [
            {"identifier": "credentials", "role": "SENDER", "url": f"{base}/credentials"},
            {"identifier": "credentials", "role": "RECEIVER", "url": f"{base}/credentials"},
            {"identifier": "sessions", "role": "SENDER", "url": f"{base}/sessions"},
            {"identifier": "chargingprofiles", "role": "RECEIVER", "url": f"{base}/chargingprofiles/"},
        ]
        if self.s.behaviour.locations:
            endpoints.append({"identifier": "locations", "role": "SENDER", "url": f"{base}/locations"})
        return self.reply({"version": ocpi.VERSION, "endpoints": endpoints}, request=request)

    def our_credentials(self) -> dict:
        cfg = self.s.config
        return ocpi.credentials_object(self.s.peer.token_ours, f"{self.s.base_url}/versions", cfg.country_code,
                                       cfg.party_id, self.s.business_name, self.s.our_roles())

    async def credentials(self, request: web.Request) -> web.Response:
        self.authorize(request, registration=True)
        peer = self.s.peer
        if request.method == "GET":
            if not peer.registered:
                raise OcpiError(405, 2000, "not registered")
            return self.reply(self.our_credentials(), request=request)
        if request.method == "DELETE":
            if not peer.registered:
                raise OcpiError(405, 2000, "not registered")
            self.s.peer = type(peer)()
            return self.reply(request=request)
        if request.method == "POST" and peer.registered:
            raise OcpiError(405, 2000, "already registered: use PUT to update")
        if request.method == "PUT" and not peer.registered:
            raise OcpiError(405, 2000, "not registered yet: use POST")
        body = await self.body(request)
        if not isinstance(body, dict) or not body.get("token") or not body.get("url") or not body.get("roles"):
            raise OcpiError(200, 2001, "credentials need token, url and roles")
        try:
            fresh = await fetch_peer(self.s, body["url"], body["token"], body["roles"])
        except RegistrationError as exc:
            return self.reply(None, exc.status_code, 200, str(exc), request=request)
        fresh.token_ours = secrets.token_urlsafe(32)  # token C
        self.s.peer = fresh
        self.s.token_a = ""  # token A is spent
        return self.reply(self.our_credentials(), request=request)

    # --- sessions (Sender) ---------------------------------------------------------------------
    async def sessions(self, request: web.Request) -> web.Response:
        self.authorize(request)
        q = request.query
        if "date_from" not in q:  # mod_sessions GET: date_from is required (Locations: optional)
            raise OcpiError(200, 2001, "date_from is required")
        date_from, date_to, offset, limit = self.page_query(q)
        cpo = self.addressed_cpo(request)
        matching = [r for r in self.s.sessions.values()
                    if r.last_updated >= date_from
                    and (date_to is None or r.last_updated < date_to)
                    and (cpo is None or self.s.config.owner(r.point) == cpo)]
        page = [self.s.session_object(r) for r in matching[offset:offset + limit]]
        return self.reply(page, headers=self.page_headers("sessions", q, len(matching), offset, limit),
                          request=request)

    @staticmethod
    def page_query(q) -> tuple[datetime | None, datetime | None, int, int]:
        """date_from, date_to, offset, limit of a paginated GET (transport_and_format: paginated responses)."""
        try:
            date_from = ocpi.parse_dt(q["date_from"]) if "date_from" in q else None
            date_to = ocpi.parse_dt(q["date_to"]) if "date_to" in q else None
            offset = int(q.get("offset", 0))
            limit = min(int(q.get("limit", MAX_PAGE)), MAX_PAGE)
        except ValueError as exc:
            raise OcpiError(200, 2001, f"bad query parameter: {exc}") from exc
        if offset < 0 or limit < 1:
            raise OcpiError(200, 2001, "offset must be >= 0 and limit >= 1")
        return date_from, date_to, offset, limit

    def page_headers(self, module: str, q, total: int, offset: int, limit: int) -> dict[str, str]:
        """X-Total-Count, X-Limit and, when more follow, the Link to the next page."""
        headers = {"X-Total-Count": str(total), "X-Limit": str(MAX_PAGE)}
        if offset + limit < total:
            params = {k: v for k, v in q.items() if k not in ("offset", "limit")}
            params.update(offset=str(offset + limit), limit=str(limit))
            headers["Link"] = f'<{self.s.base_url}/{ocpi.VERSION}/{module}?{urlencode(params)}>; rel="next"'
        return headers

    # --- locations (Sender) --------------------------------------------------------------------
    def location_objects(self, cpo: tuple[str, str] | None) -> list[dict[str, Any]]:
        cfg = self.s.config
        single = single_phase_stations(cfg)
        out = []
        for station in range(cfg.n_stations):
            owner = cfg.owner(station * 2)
            if cpo is None or owner == cpo:
                out.append(ocpi.location_object(station, *owner, bool(single[station]), cfg.station_single_a, cfg.start,
                                                lowercase=self.s.behaviour.lowercase_ids))
        return out

    async def locations(self, request: web.Request) -> web.Response:
        """GET {locations}?date_from&date_to&offset&limit (mod_locations Sender, paginated)."""
        self.authorize(request)
        q = request.query
        date_from, date_to, offset, limit = self.page_query(q)
        start = self.s.config.start  # the stations never change during a run: last_updated is the run start
        if (date_from is not None and start < date_from) or (date_to is not None and start >= date_to):
            matching: list[dict[str, Any]] = []
        else:
            matching = self.location_objects(self.addressed_cpo(request))
        return self.reply(matching[offset:offset + limit], request=request,
                          headers=self.page_headers("locations", q, len(matching), offset, limit))

    async def location(self, request: web.Request) -> web.Response:
        """GET {locations}/{location_id}: one Location (id is a CiString)."""
        self.authorize(request)
        wanted = request.match_info["location_id"].upper()
        found = next((loc for loc in self.location_objects(None) if loc["id"].upper() == wanted), None)
        if found is None:
            raise OcpiError(404, 2003, f"unknown location {request.match_info['location_id']}")
        return self.reply(found, request=request)

    # --- chargingprofiles (Receiver) ---------------------------------------------------------
    async def _gate(self, request: web.Request) -> tuple[int, int] | web.Response:
        """Common part of PUT/DELETE/GET: auth, session lookup, outage and transport faults.

        Returns (session index, point) or the response to send right away."""
        self.authorize(request)
        s, faults = self.s, self.s.config.faults
        s.stats.profile_requests += 1
        s._catch_up()
        idx = s.fleet.session_index(request.match_info["session_id"])
        if idx is None or not s.fleet.is_ongoing(idx):
            return self.profile_response("UNKNOWN_SESSION", request)
        point = int(s.fleet.pop.point[idx])
        addressed = self.addressed_cpo(request)
        if addressed is not None and addressed != s.config.owner(point):
            # A Hub routes by OCPI-to-*: the other CPO behind it does not know this session.
            return self.profile_response("UNKNOWN_SESSION", request)
        if self.throttled(idx):
            return self.profile_response("TOO_OFTEN", request)
        for outage in faults.outages:
            if outage.covers(point, s.fleet.t):
                if outage.mode == "unknown":
                    return self.profile_response("UNKNOWN_SESSION", request)
                await asyncio.sleep(s.outage_hang_s)  # the charger does not answer: client times out
                return self.reply(None, 3000, 504, "charge point unreachable", request=request)
        if s._rng.random() < faults.http_5xx_share:
            return self.reply(None, 3000, 503, "simulated server error", request=request)
        if s._rng.random() < faults.slow_share:
            await asyncio.sleep(faults.slow_delay_s)
            s._catch_up()
        u = s._rng.random()
        for name in RESPONSE_FAULTS:
            u -= getattr(faults, f"{name.lower()}_share" if name != "UNKNOWN_SESSION" else "unknown_session_share")
            if u < 0:
                return self.profile_response(name, request)
        return idx, point

    def throttled(self, idx: int) -> bool:
        """TOO_OFTEN bursts: the first N requests on a session, and any request sooner than the
        minimum interval (real seconds) after the previous one on that session."""
        b = self.s.behaviour
        count, last = self.s._profile_requests.get(idx, (0, -math.inf))
        now = time.monotonic()
        self.s._profile_requests[idx] = (count + 1, now)
        return count < b.too_often_first_n or now - last < b.too_often_min_interval_s

    def profile_response(self, result: str, request: web.Request) -> web.Response:
        self.s.stats.responses[result] = self.s.stats.responses.get(result, 0) + 1
        self.s.stats.profile_log.append((request.match_info.get("session_id", ""), request.method, time.monotonic(),
                                         result))
        return self.reply({"result": result, "timeout": self.s.profile_timeout_s}, request=request)

    async def put_profile(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        profile = parse_set_charging_profile(body)
        gate = await self._gate(request)
        if isinstance(gate, web.Response):
            return gate
        idx, point = gate
        s = self.s
        pop = s.fleet.pop
        start_s = profile["start_s"](s.config.start) if profile["start_s"] else int(pop.started_s[idx])
        phases = int(pop.phases[idx])
        periods = [(off, to_deci_amps(limit, profile["unit"], phases)) for off, limit in profile["periods"]]
        end_s = start_s + profile["duration_s"] if profile["duration_s"] is not None else None
        s.fleet.set_profile(point, start_s, periods, end_s, effective_s=s.fleet.t + s.apply_delay_s)
        owner = s.config.owner(point)
        s.post_result_later(body["response_url"], {"result": "ACCEPTED"}, owner)
        s.push_active_profile_later(request.match_info["session_id"], point, owner)
        return self.profile_response("ACCEPTED", request)

    async def delete_profile(self, request: web.Request) -> web.Response:
        response_url = request.query.get("response_url")
        if not response_url:
            raise OcpiError(200, 2001, "response_url query parameter is required")
        gate = await self._gate(request)
        if isinstance(gate, web.Response):
            return gate
        _, point = gate
        had = self.s.fleet.clear_profile(point, effective_s=self.s.fleet.t + self.s.apply_delay_s)
        owner = self.s.config.owner(point)
        self.s.post_result_later(response_url, {"result": "ACCEPTED" if had else "UNKNOWN"}, owner)
        if had:
            self.s.push_active_profile_later(request.match_info["session_id"], point, owner)
        return self.profile_response("ACCEPTED", request)

    async def get_profile(self, request: web.Request) -> web.Response:
        response_url = request.query.get("response_url")
        try:
            duration = int(request.query.get("duration", ""))
        except ValueError:
            duration = -1
        if not response_url or duration <= 0:
            raise OcpiError(200, 2001, "duration (> 0) and response_url query parameters are required")
        gate = await self._gate(request)
        if isinstance(gate, web.Response):
            return gate
        _, point = gate
        profile = active_profile(self.s.fleet, point, duration)
        self.s.post_result_later(response_url, {"result": "ACCEPTED", "profile": profile}, self.s.config.owner(point))
        return self.profile_response("ACCEPTED", request)


def build_app(server: SimulatorServer) -> web.Application:
    api = CpoApi(server)
    app = web.Application(middlewares=[api.errors], client_max_size=256 * 1024)
    v = f"/ocpi/{ocpi.VERSION}"
    app.router.add_get("/ocpi/versions", api.versions)
    app.router.add_get(v, api.details)
    app.router.add_route("*", f"{v}/credentials", api.credentials)
    app.router.add_get(f"{v}/sessions", api.sessions)
    app.router.add_get(f"{v}/sessions/", api.sessions)
    if server.behaviour.locations:
        app.router.add_get(f"{v}/locations", api.locations)
        app.router.add_get(f"{v}/locations/", api.locations)
        app.router.add_get(f"{v}/locations/{{location_id}}", api.location)
    app.router.add_put(f"{v}/chargingprofiles/{{session_id}}", api.put_profile)
    app.router.add_delete(f"{v}/chargingprofiles/{{session_id}}", api.delete_profile)
    app.router.add_get(f"{v}/chargingprofiles/{{session_id}}", api.get_profile)
    return app
