"""The live CPO platform: OCPI 2.2.1 over loopback (aiohttp), physics following the clock.

Everything that touches the fleet runs on the server's own event loop (one thread), so no
locks: HTTP handlers, the ticker that steps physics up to `clock.now()`, and the pushers.
Other threads (tests, the CLI) go through `call()`, which runs a function on that loop.

Sharding for more throughput (`--processes`, later): each process owns a disjoint block of
stations (a SimConfig with its own seed and session_prefix) and its own port; the SCSP sees
several CPO platforms. Nothing here is global, so that needs no change to this module.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import aiohttp
import numpy as np
from aiohttp import web

from simulator import groundtruth, ocpi, registration
from simulator.api import build_app
from simulator.batch import evse_uid, station_id
from simulator.config import SimConfig
from simulator.peer import Peer
from simulator.physics import Fleet
from simulator.profiles import active_profile
from simulator.truth import Truth

log = logging.getLogger("simulator.server")
T = TypeVar("T")

OUTBOUND_CONNECTIONS = 64  # the platform's connections to the SCSP (pushes, results, handshakes)
REQUEST_TIMEOUT_S = 10  # per call, once it is on the wire


@dataclass
class Stats:
    profile_requests: int = 0
    results_posted: int = 0
    results_failed: int = 0
    pushes_ok: int = 0
    pushes_failed: int = 0
    pushes_dropped: int = 0
    active_profiles_pushed: int = 0
    routing_refused: int = 0
    responses: dict[str, int] = field(default_factory=dict)
    # (session_id, method, real monotonic seconds, answer) per profile request: tests check pacing
    profile_log: list[tuple[str, str, float, str]] = field(default_factory=list)


class SimulatorServer:
    def __init__(self, config: SimConfig, clock, *, token_a: str | None = None, host: str = "127.0.0.1",
                 result_delay_s: float = 0.2, profile_timeout_s: int = 30, apply_delay_s: int = 2,
                 outage_hang_s: float = 30.0, push: bool = True, push_method: str = "PATCH",
                 tick_s: float = 0.05, business_name: str = "SMATCH CPO simulator", reuse_port: bool = False) -> None:
        self.config, self.clock, self.host = config, clock, host
        self.behaviour = config.behaviour
        self.fleet = Fleet(config)
        self.token_a = token_a or secrets.token_urlsafe(24)
        self.peer = Peer()
        self.stats = Stats()
        self.sessions: dict[int, ocpi.SessionRecord] = {}
        self.result_delay_s, self.profile_timeout_s = result_delay_s, profile_timeout_s
        self.apply_delay_s, self.outage_hang_s = apply_delay_s, outage_hang_s
        self.push_enabled, self.push_method, self.tick_s = push, push_method.upper(), tick_s
        self.business_name = business_name
        self.reuse_port = reuse_port  # several simulator processes share one port (kernel load balancing)
        self.base_url = ""
        self._rng = np.random.default_rng([config.seed, 5])
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._senders: asyncio.Semaphore | None = None
        self._ticker: asyncio.Task | None = None
        self._push_tail: dict[int, asyncio.Task] = {}
        self._profile_requests: dict[int, tuple[int, float]] = {}  # session -> (count, last real time)
        self._background: set[asyncio.Task] = set()
        self._started = threading.Event()

    # --- lifecycle ------------------------------------------------------------------------
    def start_in_thread(self, port: int = 0) -> str:
        """Serve on a background thread; returns the base URL (…/ocpi)."""
        self._thread = threading.Thread(target=self._thread_main, args=(port,), name="simulator", daemon=True)
        self._thread.start()
        if not self._started.wait(15):
            raise RuntimeError("simulator server did not start")
        return self.base_url

    def _thread_main(self, port: int) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._startup(port))
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._shutdown())
        self._loop.close()

    async def _startup(self, port: int) -> None:
        self._runner = web.AppRunner(build_app(self), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port, backlog=4096, reuse_address=True,
                           reuse_port=self.reuse_port or None)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.base_url = f"http://{self.host}:{bound}/ocpi"
        # A CSMS sends from an outbox: calls wait for one of its connections without a deadline, and
        # each call has REQUEST_TIMEOUT_S from the moment it is on the wire. aiohttp's `total` alone
        # would also count the wait for a pooled connection, so a burst of results would time out in
        # the simulator's own queue, never having reached the SCSP.
        self._senders = asyncio.Semaphore(OUTBOUND_CONNECTIONS)
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=OUTBOUND_CONNECTIONS),
                                           timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))
        self._ticker = asyncio.ensure_future(self._tick_forever())

    async def _shutdown(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        for task in list(self._background):
            task.cancel()
        if self._http:
            await self._http.close()
        if self._runner:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)

    def serve_forever(self, port: int) -> None:
        """CLI: serve on the calling thread until interrupted."""
        self.start_in_thread(port)
        try:
            while self._thread and self._thread.is_alive():
                self._thread.join(1)
        except KeyboardInterrupt:
            self.stop()

    def call(self, fn: Callable[[], T], timeout: float = 30) -> T:
        """Run `fn()` on the server loop (the only thread that touches the fleet)."""
        async def wrapper():
            return fn()
        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(timeout)

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # --- time and physics -----------------------------------------------------------------
    def now(self) -> datetime:
        return self.clock.now()

    def now_s(self) -> int:
        return int((self.clock.now() - self.config.start).total_seconds())

    def sync(self) -> None:
        """Step physics up to the clock and queue the resulting pushes (from any thread)."""
        self.call(self._catch_up)

    def _catch_up(self, max_steps: int | None = None) -> bool:
        target = self.now_s()
        if max_steps is not None:
            target = min(target, self.fleet.t + max_steps)
        if target <= self.fleet.t:
            return False
        self.fleet.step_until(target)
        self._handle_states()
        return self.fleet.t < self.now_s()

    async def _tick_forever(self) -> None:
        while True:
            try:
                behind = self._catch_up(max_steps=300)
            except Exception:  # keep serving HTTP even if a step fails; the log says why
                log.exception("physics step failed")
                behind = False
            await asyncio.sleep(0 if behind else self.tick_s)

    def truth(self) -> Truth:
        return self.call(self.fleet.truth)

    def pushes_pending(self) -> int:
        """Session pushes queued or on the wire (a caller that holds the clock waits for 0)."""
        return self.call(lambda: sum(1 for task in self._push_tail.values() if not task.done()))

    # --- session records and pushes --------------------------------------------------------
    def _handle_states(self) -> None:
        batch = self.fleet.drain_states()
        cfg, faults = self.config, self.config.faults
        for i in range(len(batch)):
            idx, point, t_s = int(batch.session[i]), int(batch.point[i]), int(batch.t_s[i])
            rec = self.sessions.get(idx)
            if rec is None:
                pop = self.fleet.pop
                rec = ocpi.SessionRecord(
                    idx, self.fleet.session_id(idx), point, ocpi.at_offset(cfg.start, int(pop.started_s[idx])),
                    int(batch.phases[i]), bool(self.fleet.reports_current[point]))
                self.sessions[idx] = rec
            rec.add_state(ocpi.at_offset(cfg.start, t_s), float(batch.kwh[i]), int(batch.current_da[i]),
                          bool(batch.completed[i]))
            if not (self.push_enabled and self.peer.registered):
                continue
            if any(o.covers(point, t_s) for o in faults.outages) or self._rng.random() < faults.drop_state_share:
                self.stats.pushes_dropped += 1
                continue
            self._queue_push(rec)

    def session_object(self, rec: ocpi.SessionRecord, periods: int | None = None) -> dict[str, Any]:
        cc, party = self.config.owner(rec.point)
        return ocpi.session_object(rec, cc, party, station_id(rec.point), evse_uid(rec.point), periods,
                                   profile=self.behaviour.profile, lowercase=self.behaviour.lowercase_ids)

    def _queue_push(self, rec: ocpi.SessionRecord) -> None:
        base = self.peer.endpoint("sessions", "RECEIVER")
        if not base:
            return
        cc, party = self.config.owner(rec.point)  # the URL keeps the CPO's own case
        url = f"{base.rstrip('/')}/{cc}/{party}/{rec.session_id}"
        if not rec.pushed or self.push_method == "PUT":
            method, body = "PUT", self.session_object(rec)
            rec.closed_sent = len(rec.closed)  # the full object carried every period: PATCHes add new ones
        else:
            method, body = "PATCH", ocpi.session_patch(rec, profile=self.behaviour.profile)
        rec.pushed = True
        previous = self._push_tail.get(rec.index)
        task = asyncio.ensure_future(self._push(method, url, body, previous, rec))
        self._push_tail[rec.index] = task
        self._track(task)
        if rec.status == "COMPLETED":
            task.add_done_callback(lambda _t, i=rec.index: self._push_tail.pop(i, None))

    async def _push(self, method: str, url: str, body: dict, previous: asyncio.Task | None,
                    rec: ocpi.SessionRecord) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])  # per-session order: PUT before its PATCHes
        owner = self.config.owner(rec.point)
        status = await self._send(method, url, body, owner)
        if status is not None and status < 300:
            self.stats.pushes_ok += 1
            return
        self.stats.pushes_failed += 1
        if method == "PATCH":  # spec: after a failed PATCH, send the whole object
            status = await self._send("PUT", url, self.session_object(rec), owner)
            if status is not None and status < 300:
                self.stats.pushes_ok += 1

    def _track(self, task: asyncio.Task) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def auth(self, token: str) -> str:
        return ocpi.auth_header(token, self.behaviour.token_encoding)

    def our_roles(self) -> list[tuple[str, str, str]]:
        """(role, country_code, party_id) we present in credentials: one CPO, or two CPOs and the Hub."""
        roles = [("CPO", cc, pid) for cc, pid in self.config.cpo_parties()]
        if self.behaviour.hub:
            roles.append(("HUB", self.config.country_code, self.behaviour.hub_party_id))
        return roles

    def headers(self, owner: tuple[str, str] | None = None) -> dict[str, str]:
        """Functional-module request headers; OCPI-from-* name the CPO owning the object (routing)."""
        cc, party = owner or (self.config.country_code, self.config.party_id)
        return {"Authorization": self.auth(self.peer.token_theirs), "X-Request-ID": str(uuid.uuid4()),
                "X-Correlation-ID": str(uuid.uuid4()), "OCPI-from-country-code": cc,
                "OCPI-from-party-id": party, "OCPI-to-country-code": self.peer.country_code,
                "OCPI-to-party-id": self.peer.party_id}

    async def request(self, method: str, url: str, body: Any = None, token: str | None = None,
                      owner: tuple[str, str] | None = None) -> int | None:
        """One outbound call; returns the HTTP status (None on transport failure)."""
        headers = self.headers(owner)
        if token is not None:
            headers["Authorization"] = self.auth(token)
        try:
            async with self._senders, self._http.request(method, url, json=body, headers=headers) as resp:
                await resp.read()
                if resp.status >= 300:
                    log.info("%s %s -> HTTP %s", method, url, resp.status)
                return resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.info("%s %s failed: %s", method, url, exc)
            return None

    def _send(self, method: str, url: str, body: Any, owner: tuple[str, str] | None):
        """`request` with the owner's routing headers; the owner is passed only when it is not the
        platform's first CPO, so wrappers of `request(method, url, body, token)` keep working."""
        if owner is None or owner == (self.config.country_code, self.config.party_id):
            return self.request(method, url, body)
        return self.request(method, url, body, owner=owner)

    async def get_json(self, url: str, token: str) -> Any:
        headers = {"Authorization": self.auth(token), "X-Request-ID": str(uuid.uuid4()),
                   "X-Correlation-ID": str(uuid.uuid4())}
        async with self._http.get(url, headers=headers) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 200 or body.get("status_code") != 1000:
                raise RuntimeError(f"GET {url}: HTTP {resp.status}, OCPI {body.get('status_code')}")
            return body.get("data")

    def post_result_later(self, url: str, body: dict, owner: tuple[str, str] | None = None) -> None:
        """The asynchronous result the EVSE 'sends back', after a short delay (or never: fault knob).

        Posted once by default: OCPI has no retries (mod_charging_profiles, ChargingProfileResponse:
        the Sender relies on `timeout`). `result_attempts` > 1 models a CSMS that retries 5xx/timeouts."""
        if self._rng.random() < self.config.faults.no_async_result_share:
            return

        async def later() -> None:
            await asyncio.sleep(self.result_delay_s)
            for attempt in range(self.behaviour.result_attempts):
                status = await self._send("POST", url, body, owner)
                if status is not None and status < 300:
                    self.stats.results_posted += 1
                    return
                if status is not None and status < 500:
                    break  # refused (4xx): retrying would not help
                if attempt + 1 < self.behaviour.result_attempts:
                    await asyncio.sleep(min(8.0, 0.5 * 2 ** attempt))
            self.stats.results_failed += 1
        self._track(asyncio.ensure_future(later()))

    def push_active_profile_later(self, session_id: str, point: int, owner: tuple[str, str]) -> None:
        """PUT the ActiveChargingProfile to the Sender interface, the URL built as the spec writes it:
        `{chargingprofiles_endpoint_url}{session_id}` (no separator added), after the EVSE applied it."""
        base = self.peer.endpoint("chargingprofiles", "SENDER")
        if not base or not self.behaviour.active_profile_push:
            return

        async def later() -> None:
            await asyncio.sleep(self.result_delay_s)
            body = active_profile(self.fleet, point, 900)
            status = await self._send("PUT", f"{base}{session_id}", body, owner)
            if status is not None and status < 300:
                self.stats.active_profiles_pushed += 1
        self._track(asyncio.ensure_future(later()))

    # --- registration (simulator as the initiating party) ----------------------------------
    def register_with(self, versions_url: str, token_a: str, timeout: float = 30) -> Peer:
        """Register with an SCSP given its versions URL and the token A it issued (credentials.asciidoc)."""
        return self.run(registration.register_with(self, versions_url, token_a), timeout)

    # --- helpers for tests ------------------------------------------------------------------
    def limit_in_force_a(self, session_id: str) -> float | None:
        """The profile limit the EVSE of `session_id` currently obeys (None: no limit)."""
        def inner():
            self._catch_up()  # the truth as of now, not as of the last physics tick
            self.fleet._apply_profile_events(self.fleet.t)  # what step(t) applies first anyway
            idx = self.fleet.session_index(session_id)
            if idx is None or not self.fleet.is_ongoing(idx):
                return None
            point = int(self.fleet.pop.point[idx])
            limit = int(self.fleet.limit_da[point])
            return None if limit >= 10_000 or not self.fleet.responsive[point] else limit / 10
        return self.call(inner)

    # --- ground truth per session ----------------------------------------------------------
    def session_truth(self, session_id: str) -> groundtruth.SessionTruth | None:
        def inner():
            idx = self.fleet.session_index(session_id)
            return None if idx is None else groundtruth.session_truth(self.fleet, idx)
        return self.call(inner)

    def drew_above_a(self, session_id: str, when: datetime, amps: float = 8.0) -> bool:
        """Did the session truly draw more than `amps` per phase during the second at `when`?"""
        st = self.session_truth(session_id)
        return st is not None and groundtruth.drew_above(self.truth(), st, self._offset(when), amps)

    def sessions_above_a(self, when: datetime, amps: float = 8.0) -> list[str]:
        """Every session truly drawing more than `amps` per phase at `when` (the ones to cap)."""
        def inner():
            self._catch_up()
            return groundtruth.sessions_above(self.fleet, self.fleet.truth(), self._offset(when), amps)
        return self.call(inner)

    def session_power_kw(self, session_id: str, t0: datetime, t1: datetime) -> np.ndarray:
        st = self.session_truth(session_id)
        if st is None:
            raise KeyError(session_id)
        return groundtruth.power_kw(self.truth(), st, self._offset(t0), self._offset(t1))

    def counterfactual_truth(self) -> Truth:
        """The same fleet up to now without any profile (no activation), for the true shed."""
        return self.call(lambda: groundtruth.counterfactual(self.fleet), timeout=120)

    def _offset(self, when: datetime) -> int:
        return int((when - self.config.start).total_seconds() // 1)

    def ongoing_session_ids(self) -> list[str]:
        def inner():
            return [self.fleet.session_id(int(s)) for s in self.fleet.session[self.fleet.status == 1]]
        return self.call(inner)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return False
