"""Load soak (issue #6 part 4): session pushes at twice the nominal rate while activations run.

    python bench/soak.py [--minutes 10] [--points 16000] [--factor 2] [--activation-every-s 180]

Production-like: a fresh PostgreSQL database, Redis, the web tier (`smatch.web`: BRP API + OCPI receiver), a real
`celery worker -B` (dispatch, restore, sweep, pulls), the CPO simulator (its own fleet answers the
ChargingProfiles and pushes its own states) and a push generator: `--points` synthetic charge
points each pushing a full Session PUT every 300 / `--factor` seconds (16,000 x 2 = ~107 pushes/s),
at 6 A so activations leave them alone. A BRP with the `auto` policy POSTs a 2-minute signal through
the REST API every `--activation-every-s`. Afterwards (caps drained, sweep done) it prints: pushes
sent / answered 2xx, states stored, duplicates, lost, activations completed, sessions left
throttled (the simulator's ground truth).

Environment: SOAK_PG_URL (admin URL, default postgres://postgres@127.0.0.1:5432/postgres),
SOAK_REDIS_URL (default redis://127.0.0.1:6379/5). Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port  # noqa: E402
from smatch import web  # noqa: E402

PG_ADMIN = os.environ.get("SOAK_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/5")
DB_NAME = "smatch_soak"



def fresh_database() -> str:
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{DB_NAME}"')
    conn.close()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + DB_NAME


def manage(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"manage.py {args}: {done.stderr[-2000:]}")
    return done.stdout.strip()


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_http(url: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:3]} exited")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer")


async def push_load(base: str, token: str, points: int, period_s: float, minutes: float, sent: dict) -> dict:
    """PUT a full Session for every point every `period_s`, spread evenly; returns HTTP status counts."""
    import aiohttp

    from simulator import ocpi as sim_ocpi
    from simulator.batch import evse_uid, station_id

    statuses: dict[str, int] = {}
    started = datetime.now(UTC).replace(microsecond=0)
    records = []
    for i in range(points):
        rec = sim_ocpi.SessionRecord(i, f"GEN-{i:06d}", i, started - timedelta(hours=1), 3, True)
        records.append(rec)
    sem = asyncio.Semaphore(64)
    auth = {"Authorization": sim_ocpi.auth_header(token), "Content-Type": "application/json"}

    async def one(http, rec, when: datetime) -> None:
        rec.add_state(when, rec.kwh + 0.1, 60, False)  # 6 A: below the 8 A minimum, never capped
        body = sim_ocpi.session_object(rec, "NL", "SIM", station_id(rec.point), evse_uid(rec.point), 2)
        key = (rec.session_id, sim_ocpi.fmt_dt(when))
        async with sem:
            try:
                async with http.put(f"{base}/NL/SIM/{rec.session_id}", data=json.dumps(body), headers=auth) as r:
                    await r.read()
                    code = str(r.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                code = type(exc).__name__
        statuses[code] = statuses.get(code, 0) + 1
        sent[key] = code

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64),
                                     timeout=aiohttp.ClientTimeout(total=30)) as http:
        t0, tasks, k = time.monotonic(), set(), 0
        end = t0 + minutes * 60
        step = period_s / points
        while True:
            due = t0 + k * step
            if due >= end:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            rec = records[k % points]
            when = datetime.now(UTC).replace(microsecond=0)  # last_updated has second resolution
            if rec.last_updated is not None and when <= rec.last_updated:
                when = rec.last_updated + timedelta(seconds=1)
            task = asyncio.ensure_future(one(http, rec, when))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1
        if tasks:
            await asyncio.wait(tasks)
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--points", type=int, default=16000)
    parser.add_argument("--factor", type=float, default=2.0, help="times the nominal rate (a state per 300 s)")
    parser.add_argument("--sim-points", type=int, default=400, help="the simulator fleet the activations cap")
    parser.add_argument("--activation-every-s", type=float, default=180)
    parser.add_argument("--logs", type=Path, default=ROOT / "var" / "soak")
    args = parser.parse_args()
    args.logs.mkdir(parents=True, exist_ok=True)

    db_url = fresh_database()
    os.environ.update(DATABASE_URL=db_url, CELERY_BROKER_URL=REDIS, DJANGO_SETTINGS_MODULE="smatch.settings")
    web_port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "CELERY_BROKER_URL": REDIS, "PYTHONPATH": str(ROOT),
           "OCPI_BASE_URL": f"http://127.0.0.1:{web_port}/ocpi", "SWEEP_INTERVAL_S": "5",
           "BRP_THROTTLE_RATE": "100000/min"}
    manage(env, "migrate", "--noinput")
    import redis

    redis.Redis.from_url(REDIS).flushdb()
    procs = [
        start(web.command(f"127.0.0.1:{web_port}", workers=4, threads=8), env, args.logs / "web.log"),
        start([sys.executable, "-m", "celery", "-A", "smatch", "worker", "-B", "-l", "INFO", "--pool", "threads",
               "--concurrency", "8", "-s", str(args.logs / "beat-schedule")], env, args.logs / "worker.log"),
    ]
    sim = None
    try:
        wait_http(f"http://127.0.0.1:{web_port}/ocpi/versions", procs[0])
        import django

        django.setup()
        import requests

        from flexibility.models import Activation, Curtailment
        from ocpi.models import SessionState
        from simulator.config import SimConfig
        from simulator.server import SimulatorServer
        from smatch.clock import SystemClock

        token_a = manage(env, "ocpi_issue_token", "soak CPO").splitlines()[-1]
        brp_token = manage(env, "brp_create", "soak BRP", "--policy", "auto").splitlines()[-1]
        now = datetime.now(UTC).replace(microsecond=0)
        sim = SimulatorServer(SimConfig(points=args.sim_points, seed=7, start=now - timedelta(hours=2),
                                        duration_s=int(args.minutes * 60) + 4 * 3600), SystemClock())
        sim.start_in_thread()
        sim.register_with(f"http://127.0.0.1:{web_port}/ocpi/versions", token_a)
        sessions_url = sim.peer.endpoint("sessions", "RECEIVER").rstrip("/")
        sent: dict = {}
        period_s = 300.0 / args.factor
        print(f"soak: {args.points} points x 1 push / {period_s:.0f} s = {args.points / period_s:.0f} pushes/s "
              f"for {args.minutes} min; activations every {args.activation_every_s:.0f} s", flush=True)

        signals: list[str] = []

        async def activations() -> None:
            k = 0
            while True:
                end = datetime.now(UTC) + timedelta(seconds=min(120, args.activation_every_s * 0.8))
                body = {"external_id": f"soak-{k}", "direction": "reduce_consumption",
                        "end_time": end.isoformat().replace("+00:00", "Z")}
                r = await asyncio.to_thread(requests.post, f"http://127.0.0.1:{web_port}/api/v1/signals/",
                                            json=body, headers={"Authorization": f"Token {brp_token}"}, timeout=30)
                signals.append(f"{body['external_id']}:{r.status_code}")
                k += 1
                await asyncio.sleep(args.activation_every_s)

        async def run() -> dict:
            act = asyncio.ensure_future(activations())
            try:
                return await push_load(sessions_url, sim.peer.token_theirs, args.points, period_s, args.minutes,
                                       sent)
            finally:
                act.cancel()

        t0 = time.monotonic()
        statuses = asyncio.run(run())
        wall = time.monotonic() - t0
        # let the last activation end and the sweep close it
        last_end = Activation.objects.order_by("-ends_at").values_list("ends_at", flat=True).first()
        if last_end:
            time.sleep(max(0.0, (last_end - datetime.now(UTC)).total_seconds()) + 15)
        ok = {k for k, code in sent.items() if code.startswith("2")}
        stored_rows = SessionState.objects.filter(session__session_id__startswith="GEN-")
        stored = {(sid, ts.strftime("%Y-%m-%dT%H:%M:%SZ")) for sid, ts in
                  stored_rows.values_list("session__session_id", "timestamp")}
        n_rows = stored_rows.count()
        acts = Activation.objects.all()
        done = acts.filter(status=Activation.Status.RESTORED).count()
        left = [s for s in sim.ongoing_session_ids() if sim.limit_in_force_a(s) is not None]
        caps = Curtailment.objects.values_list("status", flat=True)
        table = [
            ("pushes sent", len(sent)), ("push rate /s", round(len(sent) / wall, 1)),
            ("answered 2xx", len(ok)), ("answered otherwise", dict((k, v) for k, v in statuses.items()
                                                                    if not k.startswith("2"))),
            ("states stored", n_rows), ("duplicates", n_rows - len(stored)),
            ("lost (2xx but not stored)", len(ok - stored)),
            ("signals posted", len(signals)), ("activations", acts.count()),
            ("activations completed", done), ("caps by status", {s: list(caps).count(s) for s in set(caps)}),
            ("sessions left throttled", len(left)),
        ]
        print("\n| figure | value |\n|---|---|")
        for name, value in table:
            print(f"| {name} | {value} |")
        print(f"\nsignals: {signals}")
    finally:
        if sim is not None:
            sim.stop()
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, 15)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, 9)


if __name__ == "__main__":
    main()
