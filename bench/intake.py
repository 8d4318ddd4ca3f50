"""OCPI intake: Session PUT / PATCH pushes from many concurrent keep-alive clients to the production setup.

    python bench/intake.py [--quick] [--repeat N] [--json OUT] [--sessions 2000] [--seconds 20]
                           [--clients 64] [--workers 3] [--threads 4]

Per repetition: a fresh PostgreSQL database (migrated), a REGISTERED CPO party with its token
(ocpi.services.issue_token), the web tier (`smatch.web`). Every session is PUT once
(new, 201), then PATCHed round after round (new kWh, currents and the two latest charging_periods,
last_updated 5 minutes later each time) for --seconds. Sustained rate = pushes / wall time of the
PATCH phase; latency per request. Afterwards the SessionState rows are counted against the pushes
answered 1000 (every push carries a new last_updated, so every one must be a state).
The load generator runs in this process and shares the 2 cores with the server.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench.common import (
    Row,
    WebTier,
    bench_args,
    cpu_seconds,
    finish,
    fresh_database,
    manage,
    percentile,
    production_env,
)

BENCH = "intake"
DB = "smatch_h4_bench_intake"
CC, PARTY = "NL", "BEN"
START = datetime(2025, 5, 6, 6, 0, tzinfo=UTC)
SETUP = """
from ocpi import services
from ocpi.models import OcpiParty, OcpiPartyRole
party, token = services.issue_token("bench CPO")
OcpiParty.objects.filter(pk=party.pk).update(status=OcpiParty.Status.REGISTERED, country_code="{cc}", party_id="{pid}")
OcpiPartyRole.objects.create(party=party, country_code="{cc}", ocpi_party_id="{pid}", role="CPO")
print(token)
"""
COUNT = "from ocpi.models import SessionState; print(SessionState.objects.count())"


def _ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _period(start: datetime, amps: float, kwh: float) -> dict:
    return {"start_date_time": _ts(start), "dimensions": [
        {"type": "CURRENT", "volume": amps}, {"type": "POWER", "volume": round(amps * 0.69, 3)},
        {"type": "ENERGY", "volume": round(kwh, 4)}]}


def put_body(i: int) -> dict:
    sid = f"BS{i:07d}"
    return {"country_code": CC, "party_id": PARTY, "id": sid, "start_date_time": _ts(START), "kwh": 0.0,
            "cdr_token": {"country_code": CC, "party_id": PARTY, "uid": f"RFID{i:08d}", "type": "RFID",
                          "contract_id": f"{CC}-{PARTY}-C{i:08d}"},
            "auth_method": "WHITELIST", "location_id": f"LOC{i // 2:05d}", "evse_uid": f"EVSE{i:07d}",
            "connector_id": "1", "currency": "EUR", "charging_periods": [_period(START, 16.0, 0.0)],
            "status": "ACTIVE", "last_updated": _ts(START), "x_phases": 3, "x_phase_currents_a": [16.0, 16.0, 16.0]}


def patch_body(step: int) -> dict:
    now, before = START + timedelta(minutes=5 * step), START + timedelta(minutes=5 * (step - 1))
    amps = 16.0 if step % 4 else 8.0
    kwh = round(step * 0.92, 4)
    return {"kwh": kwh, "status": "ACTIVE", "last_updated": _ts(now), "x_phase_currents_a": [amps, amps, amps],
            "charging_periods": [_period(before, 16.0, 0.92), _period(now, amps, 0.0)]}


@dataclass
class Phase:
    sent: int = 0
    ok: int = 0  # OCPI status_code 1000
    wall_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.sent / self.wall_s if self.wall_s else 0.0


async def _push(http: aiohttp.ClientSession, method: str, url: str, body: dict, phase: Phase) -> None:
    t0 = time.perf_counter()
    try:
        async with http.request(method, url, json=body) as resp:
            data = await resp.json(content_type=None)
            code = data.get("status_code")
            phase.outcomes[f"{resp.status}/{code}"] += 1
            phase.ok += code == 1000
    except (TimeoutError, aiohttp.ClientError) as exc:
        phase.outcomes[type(exc).__name__] += 1
    phase.latencies.append(time.perf_counter() - t0)
    phase.sent += 1


async def drive(base: str, token: str, sessions: int, clients: int, seconds: float,
                on_patch_start: Callable[[], None] = lambda: None) -> tuple[Phase, Phase]:
    """PUT every session, then PATCH them round-robin for `seconds`; each client owns a slice of sessions."""
    url = f"{base}/ocpi/2.2.1/sessions/{CC}/{PARTY}/BS"
    headers = {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}
    puts, patches = Phase(), Phase()
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=30)) as http:
        async def put_client(k: int) -> None:
            for i in range(k, sessions, clients):
                await _push(http, "PUT", f"{url}{i:07d}", put_body(i), puts)

        async def patch_client(k: int, deadline: float) -> None:
            mine = list(range(k, sessions, clients))
            step = 1
            while time.perf_counter() < deadline:
                body = patch_body(step)  # the same update for all my sessions in this round
                for i in mine:
                    if time.perf_counter() >= deadline:
                        return
                    await _push(http, "PATCH", f"{url}{i:07d}", body, patches)
                step += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(put_client(k) for k in range(clients)))
        puts.wall_s = time.perf_counter() - t0
        on_patch_start()
        t1 = time.perf_counter()
        await asyncio.gather(*(patch_client(k, t1 + seconds) for k in range(clients)))
        patches.wall_s = time.perf_counter() - t1
    return puts, patches


def main() -> None:
    p = bench_args(__doc__)
    p.add_argument("--sessions", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=20.0, help="length of the PATCH phase")
    p.add_argument("--clients", type=int, default=64, help="concurrent keep-alive connections")
    p.add_argument("--workers", type=int, default=3, help="web worker processes")
    p.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    args = p.parse_args()
    if args.quick:
        args.sessions, args.seconds = min(args.sessions, 300), min(args.seconds, 4.0)
        args.clients = min(args.clients, 32)
    rates, p50s, p99s, put_rates, put_p99s, missing, errors, cpu_ms = [], [], [], [], [], [], [], []
    server = ""
    for rep in range(args.repeat):
        env = production_env(fresh_database(DB))
        manage(env, "migrate", "--noinput", "-v", "0")
        token = manage(env, "shell", "-c", SETUP.format(cc=CC, pid=PARTY)).strip().splitlines()[-1]
        with WebTier(env, args.workers, args.threads) as web:
            server = web.description
            pids = web.worker_pids()
            cpu0: list[float] = []
            puts, patches = asyncio.run(drive(web.base, token, args.sessions, args.clients, args.seconds,
                                              on_patch_start=lambda c=cpu0, w=pids: c.append(cpu_seconds(w))))
            cpu_ms.append((cpu_seconds(pids) - cpu0[0]) / max(1, patches.sent) * 1000)
        stored = int(manage(env, "shell", "-c", COUNT).strip().splitlines()[-1])
        ok = puts.ok + patches.ok
        sent = puts.sent + patches.sent
        lat = sorted(patches.latencies)
        rates.append(patches.rate)
        p50s.append(percentile(lat, 0.5) * 1000)
        p99s.append(percentile(lat, 0.99) * 1000)
        put_rates.append(puts.rate)
        put_p99s.append(percentile(sorted(puts.latencies), 0.99) * 1000)
        missing.append(ok - stored)
        errors.append(sent - ok)
        print(f"rep {rep + 1}: PUT {puts.sent} at {puts.rate:.0f}/s, PATCH {patches.sent} at {patches.rate:.0f}/s, "
              f"p50 {p50s[-1]:.1f} ms p99 {p99s[-1]:.1f} ms, outcomes {dict(puts.outcomes + patches.outcomes)}, "
              f"states {stored} of {ok} accepted", flush=True)
    case = f"{args.sessions} sessions, {args.clients} clients"
    note = f"{server}; PostgreSQL; PATCH phase {args.seconds:g} s; load generator on the same machine"
    finish([
        Row.of(BENCH, case, "PATCH rate (sustained)", "push/s", rates, target=">= 500", ok=lambda m: m >= 500,
               note=note),
        Row.of(BENCH, case, "PATCH latency p50", "ms", p50s),
        Row.of(BENCH, case, "PATCH latency p99", "ms", p99s, target="<= 100", ok=lambda m: m <= 100),
        Row.of(BENCH, case, "web worker CPU per PATCH", "ms", cpu_ms,
               note="user+system CPU of the web workers / PATCHes; PostgreSQL's own CPU not included"),
        Row.of(BENCH, case, "PUT rate (new sessions)", "push/s", put_rates),
        Row.of(BENCH, case, "PUT latency p99", "ms", put_p99s),
        Row.of(BENCH, case, "pushes not answered 1000", "count", errors, target="0", ok=lambda m: m == 0),
        Row.of(BENCH, case, "accepted pushes without a state", "count", missing, target="0", ok=lambda m: m == 0),
    ], args.json)


if __name__ == "__main__":
    main()
