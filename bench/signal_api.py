"""BRP signal API: latency of POST /api/v1/signals/ at a steady 50 requests/s (open loop).

    python bench/signal_api.py [--quick] [--repeat N] [--json OUT] [--rate 50] [--seconds 20] [--brps 10]

Per repetition: a fresh PostgreSQL database (migrated), --brps BRPs made with `manage.py brp_create`
(policy manual: an operator decides, so no dispatch runs; the per-BRP throttle stays at its default,
the rate is spread over the BRPs), the web tier (`smatch.web`). Requests are sent on a fixed
schedule (open loop: a slow answer does not delay the next request), each a new signal (202); latency
is measured per request from its send time. A 2 s warm-up at the same rate is not counted.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench.common import Row, WebTier, bench_args, finish, fresh_database, manage, percentile, production_env

BENCH = "signal_api"
DB = "smatch_h4_bench_signal"


async def drive(base: str, tokens: list[str], rate: float, seconds: float,
                prefix: str = "bench") -> tuple[list[float], Counter, float]:
    url = f"{base}/api/v1/signals/"
    latencies: list[float] = []
    outcomes: Counter = Counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200),
                                     timeout=aiohttp.ClientTimeout(total=30)) as http:
        async def one(k: int) -> None:
            body = {"external_id": f"{prefix}-{k}", "direction": "reduce_consumption"}
            headers = {"Authorization": f"Token {tokens[k % len(tokens)]}"}
            t0 = time.perf_counter()
            try:
                async with http.post(url, json=body, headers=headers) as resp:
                    await resp.read()
                    outcomes[resp.status] += 1
            except (TimeoutError, aiohttp.ClientError) as exc:
                outcomes[type(exc).__name__] += 1
            latencies.append(time.perf_counter() - t0)

        tasks = []
        start = time.perf_counter()
        for k in range(int(rate * seconds)):
            delay = start + k / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(k)))
        await asyncio.gather(*tasks)
        achieved = len(tasks) / (time.perf_counter() - start)
    return sorted(latencies), outcomes, achieved


def main() -> None:
    p = bench_args(__doc__)
    p.add_argument("--rate", type=float, default=50.0, help="requests per second")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--brps", type=int, default=10)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--threads", type=int, default=4)
    args = p.parse_args()
    if args.quick:
        args.seconds = min(args.seconds, 4.0)
    p50s, p99s, maxs, rates, errors = [], [], [], [], []
    server = ""
    for rep in range(args.repeat):
        env = production_env(fresh_database(DB))
        manage(env, "migrate", "--noinput", "-v", "0")
        tokens = [manage(env, "brp_create", f"bench BRP {i}").strip().splitlines()[-1] for i in range(args.brps)]
        with WebTier(env, args.workers, args.threads) as web:
            server = web.description
            asyncio.run(drive(web.base, tokens, args.rate, 2.0, prefix="warm-up"))  # workers' first requests
            lat, outcomes, achieved = asyncio.run(drive(web.base, tokens, args.rate, args.seconds))
        p50s.append(percentile(lat, 0.5) * 1000)
        p99s.append(percentile(lat, 0.99) * 1000)
        maxs.append(lat[-1] * 1000)
        rates.append(achieved)
        errors.append(sum(n for status, n in outcomes.items() if status != 202))
        print(f"rep {rep + 1}: {len(lat)} requests at {achieved:.1f}/s, p50 {p50s[-1]:.1f} ms, p99 {p99s[-1]:.1f} ms, "
              f"outcomes {dict(outcomes)}", flush=True)
    case = f"{args.rate:g}/s for {args.seconds:g} s, {args.brps} BRPs"
    note = f"{server}; PostgreSQL; policy manual; open-loop load generator on the same machine"
    finish([
        Row.of(BENCH, case, "POST latency p50", "ms", p50s, note=note),
        Row.of(BENCH, case, "POST latency p99", "ms", p99s, target="<= 50", ok=lambda m: m <= 50),
        Row.of(BENCH, case, "POST latency max", "ms", maxs),
        Row.of(BENCH, case, "achieved rate", "req/s", rates),
        Row.of(BENCH, case, "answers other than 202", "count", errors, target="0", ok=lambda m: m == 0),
    ], args.json)


if __name__ == "__main__":
    main()
