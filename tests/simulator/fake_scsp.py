"""A minimal SCSP on loopback for the simulator's HTTP tests: registers, records pushes and results."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime

from aiohttp import web

from simulator import ocpi


class FakeScsp:
    def __init__(self, token_a: str = "scsp-token-a") -> None:
        self.token_a = token_a
        self.token_c = "scsp-issued-token-c"  # what the CPO uses to call us after registration
        self.token_from_cpo = ""  # token B: what we use to call the CPO
        self.cpo_versions_url = ""
        self.pushes: list[tuple[str, str, dict]] = []  # (method, session_id, body)
        self.results: list[tuple[str, dict]] = []  # (call id, body)
        self.base_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    def _ok(self, data=None) -> web.Response:
        return web.Response(body=ocpi.envelope(datetime.now(UTC), data), content_type="application/json")

    def _authorized(self, request: web.Request, allowed: set[str]) -> bool:
        return any(t in allowed for t in ocpi.tokens_in_header(request.headers.get("Authorization")))

    async def versions(self, request):
        if not self._authorized(request, {self.token_a, self.token_c}):
            return web.Response(status=401)
        return self._ok([{"version": "2.2.1", "url": f"{self.base_url}/2.2.1"}])

    async def details(self, request):
        if not self._authorized(request, {self.token_a, self.token_c}):
            return web.Response(status=401)
        b = f"{self.base_url}/2.2.1"
        return self._ok({"version": "2.2.1", "endpoints": [
            {"identifier": "credentials", "role": "RECEIVER", "url": f"{b}/credentials"},
            {"identifier": "sessions", "role": "RECEIVER", "url": f"{b}/sessions"},
            {"identifier": "chargingprofiles", "role": "SENDER", "url": f"{b}/chargingprofiles"}]})

    async def credentials(self, request):
        if not self._authorized(request, {self.token_a}):
            return web.Response(status=401)
        body = json.loads(await request.read())
        self.token_from_cpo, self.cpo_versions_url = body["token"], body["url"]
        return self._ok({"token": self.token_c, "url": f"{self.base_url}/versions", "roles": [
            {"role": "OTHER", "business_details": {"name": "fake"}, "party_id": "SCS", "country_code": "NL"}]})

    async def session(self, request):
        if not self._authorized(request, {self.token_c}):
            return web.Response(status=401)
        self.pushes.append((request.method, request.match_info["sid"], json.loads(await request.read())))
        return self._ok()

    async def result(self, request):
        if not self._authorized(request, {self.token_c}):
            return web.Response(status=401)
        self.results.append((request.match_info["cid"], json.loads(await request.read())))
        return self._ok()

    def start(self) -> str:
        started = threading.Event()

        def main():
            self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_get("/ocpi/versions", self.versions)
            app.router.add_get("/ocpi/2.2.1", self.details)
            app.router.add_post("/ocpi/2.2.1/credentials", self.credentials)
            app.router.add_route("*", "/ocpi/2.2.1/sessions/{cc}/{pid}/{sid}", self.session)
            app.router.add_post("/ocpi/2.2.1/chargingprofiles/results/{cid}", self.result)
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
