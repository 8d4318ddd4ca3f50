"""A keep-alive aiohttp load generator: how many profile PUTs per second a CPO endpoint answers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import aiohttp

from simulator import ocpi
from simulator.clock import FrozenClock
from simulator.config import SimConfig
from simulator.server import SimulatorServer


@dataclass
class LoadResult:
    requests: int
    wall_s: float
    http_status: Counter
    results: Counter
    latency_p50_ms: float
    latency_p99_ms: float

    @property
    def per_s(self) -> float:
        return self.requests / self.wall_s if self.wall_s else 0.0


async def put_storm(profiles_url: str, token: str, session_ids: Sequence[str], response_url_base: str,
                    concurrency: int = 64, limit_a: float = 8.0, duration_s: int = 900) -> LoadResult:
    """PUT one 8 A profile per session id over `concurrency` pooled keep-alive connections."""
    body_tpl = {"charging_profile": {"charging_rate_unit": "A", "duration": duration_s,
                                     "charging_profile_period": [{"start_period": 0, "limit": limit_a}]}}
    headers = {"Authorization": ocpi.auth_header(token), "Content-Type": "application/json"}
    statuses: Counter = Counter()
    results: Counter = Counter()
    latencies: list[float] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for sid in session_ids:
        queue.put_nowait(sid)

    async def worker(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            sid = queue.get_nowait()
            body = dict(body_tpl, response_url=f"{response_url_base.rstrip('/')}/{uuid.uuid4()}")
            t0 = time.perf_counter()
            try:
                async with http.put(f"{profiles_url.rstrip('/')}/{sid}", json=body, headers=headers) as resp:
                    data = await resp.json(content_type=None)
                    statuses[resp.status] += 1
                    results[(data.get("data") or {}).get("result", "NONE")] += 1
            except (TimeoutError, aiohttp.ClientError) as exc:
                statuses[type(exc).__name__] += 1
            latencies.append(time.perf_counter() - t0)

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
        start = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0
    return LoadResult(len(session_ids), wall, statuses, results, pct(0.5), pct(0.99))


def measure_put_capacity(profiles_url: str, token: str, session_ids: Sequence[str], response_url_base: str,
                         concurrency: int = 64) -> LoadResult:
    """Synchronous wrapper (own event loop) for scripts and benches."""
    return asyncio.run(put_storm(profiles_url, token, session_ids, response_url_base, concurrency))


def serve_for_loadtest(cfg: SimConfig, conn) -> None:
    """Child process: a simulator on a frozen clock, sessions ongoing, until told to stop."""
    clock = FrozenClock(cfg.start)
    server = SimulatorServer(cfg, clock, push=False)
    base = server.start_in_thread(0)
    server.peer.token_ours, server.peer.token_theirs = "loadtest-token", "unused"
    clock.advance(60)
    server.sync()
    conn.send((base, server.ongoing_session_ids()))
    conn.recv()
    conn.send(dict(server.stats.responses))
    server.stop()


def serve_shard(cfg: SimConfig, port: int, token_ours: str, token_theirs: str, conn) -> None:
    """Child process: one of several simulator processes sharing `port` (SO_REUSEPORT).

    Every shard builds the same fleet from the same seed, so any shard can answer for any session;
    the kernel spreads connections over them. For benchmarks only: shards do not share profiles.
    """
    clock = FrozenClock(cfg.start)
    server = SimulatorServer(cfg, clock, push=False, reuse_port=True)
    base = server.start_in_thread(port)
    server.peer.token_ours, server.peer.token_theirs = token_ours, token_theirs
    clock.advance(60)
    server.sync()
    conn.send((base, server.ongoing_session_ids()))
    while conn.recv() != "stop":
        conn.send(asdict(server.stats))
    conn.send(asdict(server.stats))
    server.stop()
