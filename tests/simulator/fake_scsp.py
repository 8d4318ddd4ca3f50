"""A minimal SCSP on loopback for the simulator's HTTP tests, strict to OCPI 2.2.1 (not a mirror of
the product): it reads only what the spec defines and writes down every departure in `violations`.

- Authorization: base64 only (or raw only, `raw_token=True`); anything else is HTTP 401.
- Functional-module requests (sessions, chargingprofiles) need X-Request-ID, X-Correlation-ID and
  the routing headers: OCPI-from-* a party the CPO holds, OCPI-to-* ours.
- Sessions: URL country_code / party_id must be a role the CPO registered; the body's ids equal the
  URL's without regard to case (CiString); PUT needs every required Session field; DateTime is
  string(25); a PATCH of an unknown session is 404; charging_periods in a PATCH are added.
- It answers with the routing headers reversed, and echoes X-Request-ID / X-Correlation-ID.
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from simulator import ocpi

SESSION_REQUIRED = ("country_code", "party_id", "id", "start_date_time", "kwh", "cdr_token", "auth_method",
                    "location_id", "evse_uid", "connector_id", "currency", "status", "last_updated")
SESSION_STATUS = {"ACTIVE", "COMPLETED", "INVALID", "PENDING", "RESERVATION"}
DIMENSIONS = {"CURRENT", "ENERGY", "ENERGY_EXPORT", "ENERGY_IMPORT", "MAX_CURRENT", "MIN_CURRENT", "MAX_POWER",
              "MIN_POWER", "PARKING_TIME", "POWER", "RESERVATION_TIME", "STATE_OF_CHARGE", "TIME"}
OUR_ROLE = ("NL", "SCS")


class FakeScsp:
    def __init__(self, token_a: str = "scsp-token-a", raw_token: bool = False, sender_url_slash: bool = True) -> None:
        self.token_a = token_a
        self.token_c = "scsp-issued-token-c"  # what the CPO uses to call us after registration
        self.token_from_cpo = ""  # token B: what we use to call the CPO
        self.cpo_versions_url = ""
        self.cpo_roles: list[dict] = []
        self.encoding = "raw" if raw_token else "base64"
        self.sender_url_slash = sender_url_slash
        self.pushes: list[tuple[str, str, dict]] = []  # (method, session_id as in the URL, body)
        self.push_headers: list[dict[str, str]] = []
        self.sessions: dict[tuple[str, str, str], dict] = {}  # (CC, PARTY, ID) upper-cased -> stored Session
        self.results: list[tuple[str, dict]] = []  # (call id, body)
        self.result_attempts = 0  # result POSTs received, answered or not
        self.result_http_status = 200  # 503: the SCSP is down for result POSTs
        self.active_profiles: list[tuple[str, dict]] = []  # (path after the Sender URL, body)
        self.unmatched: list[tuple[str, str]] = []  # (method, path) nobody serves
        self.violations: list[str] = []
        self.base_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    # --- plumbing -------------------------------------------------------------------------
    def _reply(self, request: web.Request, data: Any = None, status_code: int = 1000, http_status: int = 200,
               message: str | None = None) -> web.Response:
        headers = {k: request.headers[k] for k in ("X-Request-ID", "X-Correlation-ID") if k in request.headers}
        for a, b in (("to", "from"), ("from", "to")):
            for part in ("country-code", "party-id"):
                if f"OCPI-{b}-{part}" in request.headers:
                    headers[f"OCPI-{a}-{part}"] = request.headers[f"OCPI-{b}-{part}"]
        return web.Response(body=ocpi.envelope(datetime.now(UTC), data, status_code, message), status=http_status,
                            content_type="application/json", headers=headers)

    def _authorized(self, request: web.Request, allowed: set[str]) -> bool:
        offered = ocpi.tokens_in_header(request.headers.get("Authorization"), self.encoding)
        return any(t in allowed for t in offered)

    def _cpo_holds(self, cc: str | None, party: str | None) -> bool:
        return any((cc or "").upper() == r.get("country_code", "").upper()
                   and (party or "").upper() == r.get("party_id", "").upper() for r in self.cpo_roles)

    def _functional(self, request: web.Request) -> str | None:
        """Headers every Functional Module request carries; returns what is wrong (None: fine)."""
        h = request.headers
        missing = [k for k in ("X-Request-ID", "X-Correlation-ID") if not h.get(k)]
        if missing:
            return f"missing {missing}"
        if not self._cpo_holds(h.get("OCPI-from-country-code"), h.get("OCPI-from-party-id")):
            return f"OCPI-from-* {h.get('OCPI-from-country-code')}/{h.get('OCPI-from-party-id')} is not the CPO's"
        to = (h.get("OCPI-to-country-code", "").upper(), h.get("OCPI-to-party-id", "").upper())
        if to != OUR_ROLE:
            return f"OCPI-to-* {to} is not us"
        return None

    def _refuse(self, request: web.Request, why: str) -> web.Response:
        self.violations.append(f"{request.method} {request.path}: {why}")
        return self._reply(request, None, 2001, 400, why)

    @staticmethod
    def _bad_datetimes(obj: dict, keys: tuple[str, ...]) -> list[str]:
        bad = []
        for k in keys:
            v = obj.get(k)
            if v is None:
                continue
            if not isinstance(v, str) or len(v) > 25:
                bad.append(k)
                continue
            try:
                ocpi.parse_dt(v)
            except ValueError:
                bad.append(k)
        return bad

    def _periods_wrong(self, periods: Any) -> str | None:
        if not isinstance(periods, list):
            return "charging_periods is not a list"
        for p in periods:
            if not isinstance(p, dict) or self._bad_datetimes(p, ("start_date_time",)) or not p.get("dimensions"):
                return f"bad ChargingPeriod {p}"
            if any(d.get("type") not in DIMENSIONS or not isinstance(d.get("volume"), int | float)
                   for d in p["dimensions"]):
                return f"bad CdrDimension in {p}"
        return None

    # --- configuration modules ----------------------------------------------------------------
    async def versions(self, request):
        if not self._authorized(request, {self.token_a, self.token_c}):
            return web.Response(status=401)
        return self._reply(request, [{"version": "2.2.1", "url": f"{self.base_url}/2.2.1"}])

    async def details(self, request):
        if not self._authorized(request, {self.token_a, self.token_c}):
            return web.Response(status=401)
        b = f"{self.base_url}/2.2.1"
        sender = f"{b}/chargingprofiles/" if self.sender_url_slash else f"{b}/chargingprofiles"
        return self._reply(request, {"version": "2.2.1", "endpoints": [
            {"identifier": "credentials", "role": "RECEIVER", "url": f"{b}/credentials"},
            {"identifier": "sessions", "role": "RECEIVER", "url": f"{b}/sessions"},
            {"identifier": "chargingprofiles", "role": "SENDER", "url": sender}]})

    async def credentials(self, request):
        if not self._authorized(request, {self.token_a}):
            return web.Response(status=401)
        if any(k.startswith("OCPI-to") or k.startswith("OCPI-from") for k in request.headers):
            self.violations.append("routing headers on a Configuration Module request")
        body = json.loads(await request.read())
        self.token_from_cpo, self.cpo_versions_url = body["token"], body["url"]
        self.cpo_roles = body["roles"]
        return self._reply(request, {"token": self.token_c, "url": f"{self.base_url}/versions", "roles": [
            {"role": "OTHER", "business_details": {"name": "fake"}, "party_id": OUR_ROLE[1],
             "country_code": OUR_ROLE[0]}]})

    # --- sessions Receiver --------------------------------------------------------------------
    async def session(self, request):
        if not self._authorized(request, {self.token_c}):
            return web.Response(status=401)
        wrong = self._functional(request)
        if wrong:
            return self._refuse(request, wrong)
        cc, party, sid = (request.match_info[k] for k in ("cc", "pid", "sid"))
        if not self._cpo_holds(cc, party):
            return self._refuse(request, f"{cc}/{party} in the URL is not a role of the CPO")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return self._refuse(request, "invalid JSON")
        self.pushes.append((request.method, sid, body))
        self.push_headers.append(dict(request.headers))
        for field_name, url_value in (("country_code", cc), ("party_id", party), ("id", sid)):
            if field_name in body and str(body[field_name]).upper() != url_value.upper():
                return self._refuse(request, f"{field_name} {body[field_name]!r} differs from the URL's {url_value!r}")
        key = (cc.upper(), party.upper(), sid.upper())
        bad = self._bad_datetimes(body, ("start_date_time", "end_date_time", "last_updated"))
        if bad:
            return self._refuse(request, f"DateTime fields not string(25): {bad}")
        if "status" in body and body["status"] not in SESSION_STATUS:
            return self._refuse(request, f"status {body['status']!r}")
        if "charging_periods" in body and (why := self._periods_wrong(body["charging_periods"])):
            return self._refuse(request, why)
        if request.method == "PUT":
            missing = [k for k in SESSION_REQUIRED if k not in body]
            if missing:
                return self._refuse(request, f"Session without {missing}")
            self.sessions[key] = dict(body, charging_periods=list(body.get("charging_periods", [])))
        elif request.method == "PATCH":
            stored = self.sessions.get(key)
            if stored is None:
                self.violations.append(f"PATCH of unknown session {sid}")
                return self._reply(request, None, 2001, 404, "unknown session: PUT it first")
            added = body.get("charging_periods", [])
            stored.update({k: v for k, v in body.items() if k != "charging_periods"})
            stored["charging_periods"] = stored["charging_periods"] + list(added)
        else:
            return self._reply(request, None, 2000, 405, "method not allowed")
        return self._reply(request)

    # --- chargingprofiles Sender --------------------------------------------------------------
    async def result(self, request):
        if not self._authorized(request, {self.token_c}):
            return web.Response(status=401)
        wrong = self._functional(request)
        if wrong:
            return self._refuse(request, wrong)
        self.result_attempts += 1
        if self.result_http_status != 200:
            return self._reply(request, None, 3000, self.result_http_status, "down")
        self.results.append((request.match_info["cid"], json.loads(await request.read())))
        return self._reply(request)

    async def active_profile(self, request):
        if not self._authorized(request, {self.token_c}):
            return web.Response(status=401)
        wrong = self._functional(request)
        if wrong:
            return self._refuse(request, wrong)
        body = json.loads(await request.read())
        if not isinstance(body, dict) or "start_date_time" not in body or "charging_profile" not in body:
            return self._refuse(request, "ActiveChargingProfile needs start_date_time and charging_profile")
        self.active_profiles.append((request.match_info["tail"], body))
        return self._reply(request)

    async def fallback(self, request):
        self.unmatched.append((request.method, request.path))
        return self._reply(request, None, 2000, 404, "no such endpoint")

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> str:
        started = threading.Event()

        def main():
            self._loop = asyncio.new_event_loop()
            app = web.Application()
            v = "/ocpi/2.2.1"
            app.router.add_get("/ocpi/versions", self.versions)
            app.router.add_get(v, self.details)
            app.router.add_post(f"{v}/credentials", self.credentials)
            app.router.add_route("*", f"{v}/sessions/{{cc}}/{{pid}}/{{sid}}", self.session)
            app.router.add_post(f"{v}/chargingprofiles/results/{{cid}}", self.result)
            app.router.add_put(f"{v}/chargingprofiles/{{tail}}", self.active_profile)
            app.router.add_route("*", "/{path:.*}", self.fallback)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/ocpi"
            started.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())

        threading.Thread(target=main, daemon=True).start()
        started.wait(10)
        return self.base_url

    def stop(self) -> None:
        if self._loop:
            self._loop.call_soon_threadsafe(self._loop.stop)
