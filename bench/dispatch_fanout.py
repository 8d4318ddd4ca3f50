"""Dispatch fan-out, the critical path: BRP signal -> every session's 8 A PUT answered.

    python bench/dispatch_fanout.py [--sizes 1000,4000,16000,64000] [--repeat 3] [--quick] [--json OUT]

Production setup on this machine: PostgreSQL, Redis, the web tier (`smatch.web`: BRP API and the OCPI result
receiver), a real `celery worker`, and the CPO simulator in its own processes sharing one port
(SO_REUSEPORT), so the simulator is not the product's bottleneck. For each size N the simulator
holds N ongoing sessions; the product knows them as ACTIVE sessions above 8 A (bulk-loaded: the
intake path is measured by bench/intake.py). Each repetition:

- a BRP with the `auto` policy POSTs a signal; t0 is just before the POST;
- relay -> all PUTs answered: the last ChargingProfileCall `answered_at` minus t0;
- relay -> all async results: the last `result_at` (the simulator POSTs each result ~0.2 s later);
- cancel -> all DELETEs answered: the BRP cancels, every profile is cleared.

In the same run, the raw capacity of the same simulator processes is measured with a minimal
keep-alive load generator (aiohttp, 64 connections, no async results); the table prints the
dispatch PUT rate as a share of that capacity (target >= 30 %). The CPU of the web workers and of
the celery worker processes over each activation gives the CPU per PUT and per async result.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    Row,
    WebTier,
    bench_args,
    finish,
    fresh_database,
    manage,
    production_env,
)
from smatch import waiting

NAME = "dispatch_fanout"
BROKER = os.environ.get("BENCH_DISPATCH_BROKER", "redis://127.0.0.1:6379/13")
SIM_START = datetime(2025, 5, 6, 15, 0, tzinfo=UTC)  # 17:00 local: the evening peak
SIM_TOKEN_OURS = "bench-scsp-token"  # what we send the simulator
SIM_TOKEN_THEIRS = "bench-cpo-token"  # what the simulator sends us (result POSTs)
OCCUPANCY = 0.40  # ongoing sessions per charge point at SIM_START (seen: 0.43)


class Worker:
    """`celery -A smatch worker` as a child process, as in production (compose.yaml)."""

    def __init__(self, env: dict[str, str], pool: str, concurrency: int, log: Path) -> None:
        self.env, self.pool, self.concurrency, self.log, self.proc = env, pool, concurrency, log, None

    def __enter__(self) -> Worker:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "smatch", "worker", "-l", "INFO", "--pool", self.pool,
             "--concurrency", str(self.concurrency), "--without-gossip", "--without-mingle",
             "--without-heartbeat"],
            cwd=ROOT, env=self.env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if b"ready." in self.log.read_bytes():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"celery worker did not start:\n{self.log.read_text()[-2000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class SimulatorShards:
    """K simulator processes with the same fleet, sharing one port."""

    def __init__(self, points: int, processes: int, results: bool) -> None:
        from simulator.config import Faults, SimConfig

        faults = Faults(no_async_result_share=0.0 if results else 1.0)
        self.config = SimConfig(points=points, seed=7, start=SIM_START, duration_s=3600, occupancy_scale=1.0,
                                faults=faults)
        self.processes, self.children = processes, []

    def __enter__(self) -> SimulatorShards:
        from bench.common import free_port
        from simulator.loadgen import serve_shard

        ctx = multiprocessing.get_context("spawn")
        port = free_port()
        for _ in range(self.processes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=serve_shard, args=(self.config, port, SIM_TOKEN_OURS, SIM_TOKEN_THEIRS, child),
                               daemon=True)
            proc.start()
            self.children.append((proc, parent))
        answers = [parent.recv() for _, parent in self.children]
        self.base, self.session_ids = answers[0]
        return self

    def stats(self) -> list[dict]:
        out = []
        for _, parent in self.children:
            parent.send("stats")
            out.append(parent.recv())
        return out

    def __exit__(self, *exc: object) -> None:
        for proc, parent in self.children:
            try:
                parent.send("stop")
                parent.recv()
            except (BrokenPipeError, EOFError):
                pass
            proc.join(10)


def _tree(pid: int) -> list[int]:
    """A process and all its descendants (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        path = Path(f"/proc/{p}/task/{p}/children")
        if path.exists():
            todo += [int(x) for x in path.read_text().split()]
    return out


def _grown(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU the backends used between two readings: a backend gone by the second one is not counted (a
    floor), one new since the first counts whole."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def _backends() -> list[int]:
    """The PostgreSQL backends serving this benchmark's database (web, worker and this process)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [int(row[0]) for row in cursor.fetchall()]


def load_fleet(session_ids: list[str], base: str) -> int:
    """The CPO party and its N ACTIVE sessions above 8 A, in bulk; returns the party id."""
    from flexibility.models import Activation, Curtailment, Decision, Signal
    from ocpi.models import ChargingProfileCall, OcpiParty, Session, hash_token

    ChargingProfileCall.objects.all().delete()
    Curtailment.objects.all().delete()
    Activation.objects.all().delete()
    Decision.objects.all().delete()
    Signal.objects.all().delete()
    Session.objects.all().delete()
    OcpiParty.objects.all().delete()
    party = OcpiParty.objects.create(
        name="simulator shards", country_code="NL", party_id="SIM", role="CPO", status=OcpiParty.Status.REGISTERED,
        token_ours_hash=hash_token(SIM_TOKEN_THEIRS), token_theirs=SIM_TOKEN_OURS, versions_url=f"{base}/versions",
        endpoints=[{"identifier": "chargingprofiles", "role": "RECEIVER", "url": f"{base}/2.2.1/chargingprofiles"}],
    )
    now = datetime.now(UTC)
    Session.objects.bulk_create(
        (Session(party=party, country_code="NL", ocpi_party_id="SIM", session_id=sid, location_id=f"L{i // 2}",
                 evse_uid=f"E{i}", connector_id="1", status="ACTIVE", start_date_time=now - timedelta(hours=1),
                 kwh=5.0, last_updated=now, phases=3, last_current_a=16.0, first_active_at=now)
         for i, sid in enumerate(session_ids)),
        batch_size=5000,
    )
    return party.pk


def wait(predicate, timeout_s: float, what: str, interval_s: float = 0.05):
    return waiting.wait_until(predicate, timeout_s, what, interval_s)


def one_activation(api: str, token: str, label: str, timeout_s: float, expect_results: bool,
                   cpu=lambda: (0.0, 0.0, {}, 0.0)) -> dict[str, float]:
    """Signal -> caps answered -> async results -> cancel -> DELETEs answered; seconds from t0."""
    import requests
    from django.db.models import Max

    from flexibility.models import Activation, Curtailment
    from ocpi.models import ChargingProfileCall

    http = requests.Session()
    http.headers["Authorization"] = f"Token {token}"
    end = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    cpu0 = cpu()
    t0 = datetime.now(UTC)
    answer = http.post(f"{api}/api/v1/signals/", json={"external_id": label, "direction": "reduce_consumption",
                                                        "end_time": end}, timeout=30)
    answer.raise_for_status()
    signal_url = answer.json()["url"]
    activation = wait(lambda: Activation.objects.filter(signal_id=answer.json()["id"]).exclude(
        status="dispatching").first(), timeout_s, f"{label}: every PUT answered")
    caps = Curtailment.objects.filter(activation=activation)
    sets = ChargingProfileCall.objects.filter(kind="SET", purpose_id__in=caps.values("pk"))
    accepted = sets.filter(response_result="ACCEPTED").count()
    answered = sets.aggregate(t=Max("answered_at"))["t"]
    results, results_n = None, 0
    if expect_results:
        seen = {"n": -1, "since": time.monotonic()}

        def all_in_or_stalled() -> bool:
            n_now = sets.filter(result_at__isnull=False).count()
            if n_now != seen["n"]:
                seen.update(n=n_now, since=time.monotonic())
            # The simulator gives a result up after its retries: 30 s without a new one means the rest is lost.
            return n_now >= accepted or time.monotonic() - seen["since"] > 30

        wait(all_in_or_stalled, timeout_s, f"{label}: async results", interval_s=0.5)
        results_n = sets.filter(result_at__isnull=False).count()
        if results_n >= accepted:
            results = sets.aggregate(t=Max("result_at"))["t"]
    cpu1 = cpu()
    t1 = datetime.now(UTC)
    http.post(f"{signal_url}cancel/", timeout=30).raise_for_status()
    wait(lambda: Activation.objects.filter(pk=activation.pk, status="restored").exists(), timeout_s,
         f"{label}: restore")
    clears = ChargingProfileCall.objects.filter(kind="CLEAR", purpose_id__in=caps.values("pk"))
    cleared = clears.aggregate(t=Max("answered_at"))["t"]
    return {
        "eligible": activation.eligible, "accepted": accepted, "results_n": results_n,
        "answered_s": (answered - t0).total_seconds(),
        "results_s": (results - t0).total_seconds() if results else float("nan"),
        "restore_s": (cleared - t1).total_seconds() if cleared else float("nan"),
        "web_cpu_s": cpu1[0] - cpu0[0], "worker_cpu_s": cpu1[1] - cpu0[1], "pg_cpu_s": _grown(cpu0[2], cpu1[2]),
        "sim_cpu_s": cpu1[3] - cpu0[3],
    }


def raw_capacity(base: str, session_ids: list[str], requests_n: int) -> float:
    from simulator.loadgen import put_storm

    ids = (session_ids * (requests_n // max(1, len(session_ids)) + 1))[:requests_n]
    res = asyncio.run(put_storm(f"{base}/2.2.1/chargingprofiles", SIM_TOKEN_OURS, ids, "http://127.0.0.1:9/r", 64))
    return res.per_s


def main() -> int:
    p = bench_args(__doc__)
    p.add_argument("--sizes", default="1000,4000,16000,64000")
    p.add_argument("--sim-processes", type=int, default=2)
    p.add_argument("--worker-pool", default="prefork", choices=["prefork", "threads"])
    p.add_argument("--worker-concurrency", type=int, default=2, help="celery worker processes / threads")
    p.add_argument("--web-workers", type=int, default=2)
    p.add_argument("--web-threads", type=int, default=16,
                   help="threads per web worker (results arriving together are written together)")
    p.add_argument("--web-nice", type=int, default=0,
                   help="run the web tier under `nice -n N` (the result burst yields the CPU to the fan-out)")
    p.add_argument("--no-async-results", action="store_true",
                   help="the simulator posts no ChargingProfileResult (isolates the PUT path)")
    args = p.parse_args()
    sizes = [1000] if args.quick else [int(s) for s in args.sizes.split(",")]
    repeat = 1 if args.quick else args.repeat

    url = fresh_database("smatch_bench_dispatch")
    env = production_env(url, CELERY_BROKER_URL=BROKER)
    manage(env, "migrate", "--noinput", "-v", "0")
    os.environ.update({k: env[k] for k in ("DJANGO_ENV", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL",
                                           "CELERY_BROKER_URL", "OUTBOUND_ALLOW_PRIVATE")})
    os.environ["DJANGO_SETTINGS_MODULE"] = "smatch.settings"
    import django

    django.setup()
    from smatch.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(app.conf.task_default_queue)
    rows: list[Row] = []
    log = ROOT / "var" / "bench-dispatch-worker.log"
    log.parent.mkdir(exist_ok=True)
    with WebTier(env, workers=args.web_workers, threads=args.web_threads, nice=args.web_nice) as web:
        worker_env = dict(env, OCPI_BASE_URL=f"{web.base}/ocpi")
        with Worker(worker_env, args.worker_pool, args.worker_concurrency, log) as worker:
            from bench.common import cpu_seconds
            from flexibility.services import create_brp

            def cpu(simulator_pids: list[int]) -> tuple[float, float, dict[int, float], float]:
                return (cpu_seconds(web.worker_pids()), cpu_seconds(_tree(worker.proc.pid)),
                        {pid: cpu_seconds([pid]) for pid in _backends()}, cpu_seconds(simulator_pids))

            for n in sizes:
                rows += measure_size(n, args, repeat, web.base, create_brp, cpu, web.description)
    finish(rows, args.json)
    return 0


def measure_size(n: int, args, repeat: int, api: str, create_brp, cpu, server: str) -> list[Row]:
    from flexibility.models import Brp

    points = int(n / OCCUPANCY * 1.25) + 400  # occupancy varies a little with the fleet size
    samples: dict[str, list[float]] = {"answered_s": [], "results_s": [], "restore_s": [], "web_cpu_s": [],
                                       "worker_cpu_s": [], "pg_cpu_s": [], "sim_cpu_s": []}
    raw: list[float] = []
    results_seen: list[int] = []
    with SimulatorShards(points, args.sim_processes, results=not args.no_async_results) as sim:
        ids = sim.session_ids[:n]
        if len(ids) < n:
            raise RuntimeError(f"the simulator has only {len(ids)} ongoing sessions for N={n}")
        load_fleet(ids, sim.base)
        _, token = create_brp(f"bench BRP {n}", Brp.Policy.AUTO)
        for r in range(repeat):
            out = one_activation(api, token, f"bench-{n}-{r}-{time.time_ns()}", timeout_s=60 + n / 150,
                                 expect_results=not args.no_async_results,
                                 cpu=lambda: cpu([proc.pid for proc, _ in sim.children]))
            if out["accepted"] != n:
                raise RuntimeError(f"N={n}: only {out['accepted']} of {n} PUTs accepted ({out})")
            for key in samples:
                samples[key].append(out[key])
            results_seen.append(out["results_n"])
            print(f"  N={n} run {r + 1}: PUTs answered {out['answered_s']:.2f} s, async results "
                  f"{out['results_s']:.2f} s, restore {out['restore_s']:.2f} s", flush=True)
    with SimulatorShards(points, args.sim_processes, results=False) as sim:
        for _ in range(repeat):
            raw.append(raw_capacity(sim.base, sim.session_ids[:n], max(n, 4000)))
    rate = [n / s for s in samples["answered_s"]]
    share = [r / c for r, c in zip(sorted(rate), sorted(raw), strict=True)]
    case = f"N={n:,}"
    big = n == 16000
    lost = [n - seen for seen in results_seen] if not args.no_async_results else []
    rows = [
        Row.of(NAME, case, "relay -> all PUTs answered", "s", samples["answered_s"],
               target="<= 7.5 s (stretch 5 s)" if big else None, ok=(lambda v: v <= 7.5) if big else None,
               note=f"{server}; celery {args.worker_pool} x {args.worker_concurrency}; "
                    f"async results {'off' if args.no_async_results else 'on'}"),
        Row.of(NAME, case, "relay -> all async results", "s", samples["results_s"],
               target="<= 15 s" if big and not args.no_async_results else None,
               ok=(lambda v: v <= 15) if big and not args.no_async_results else None,
               note=f"async results received per run: {results_seen} of {n}"),
        Row.of(NAME, case, "cancel -> all DELETEs answered", "s", samples["restore_s"]),
        Row.of(NAME, case, "dispatch PUT rate", "PUT/s", rate),
        Row.of(NAME, case, "simulator raw PUT capacity", "PUT/s", raw,
               note=f"{args.sim_processes} simulator processes, aiohttp 64 keep-alive connections"),
        Row.of(NAME, case, "dispatch rate / raw capacity", "ratio", share, target=">= 0.3", ok=lambda v: v >= 0.3),
        Row.of(NAME, case, "worker CPU per PUT", "ms", [c / n * 1000 for c in samples["worker_cpu_s"]],
               note="celery worker processes' user+system CPU from relay until all results are in / N "
                    "(plan, claim, PUT, record the answers)"),
        Row.of(NAME, case, "web CPU per async result", "ms", [c / n * 1000 for c in samples["web_cpu_s"]],
               note="web workers' user+system CPU over the same span / N (mostly the result POSTs)"),
        Row.of(NAME, case, "PostgreSQL CPU per PUT + result", "ms", [c / n * 1000 for c in samples["pg_cpu_s"]],
               note="CPU of the backends of this database over the same span / N (a backend that closed "
                    "meanwhile is not counted: a floor)"),
    ]
    rows.append(Row.of(NAME, case, "simulator CPU per PUT + result", "ms",
                       [c / n * 1000 for c in samples["sim_cpu_s"]],
                       note="the simulator processes' user+system CPU over the same span / N (answering the PUTs, "
                            "posting the results): the CPO's share of this box"))
    if lost:
        rows.append(Row.of(NAME, case, "async results lost", "count", lost, target="0", ok=lambda v: v == 0,
                           note="accepted PUTs whose result was never recorded (the simulator posts each once)"))
    return rows


if __name__ == "__main__":
    sys.exit(main())
