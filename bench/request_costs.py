"""Cost of one request on each hot path: CPU milliseconds and database statements, in-process.

    python bench/request_costs.py [--quick] [--repeat N] [--json OUT] [--n 2000] [--profile PATH]

A fresh PostgreSQL database with production settings; the requests go through the whole Django
stack (WSGI handler, middleware, our view) by `django.test.Client`, one at a time, so CPU time per
request is this process's `time.process_time()` (not wall clock: robust on a shared box) and the
statements are counted with a `connection.execute_wrapper` (what `CaptureQueriesContext` counts,
without its 9,000-query log limit). Paths:

- result POST: an async ChargingProfileResult ACCEPTED for a pending cap (the dispatcher moves it);
- session PATCH: kWh, currents and charging periods of an ACTIVE session (a new state);
- session PUT: a new session (201);
- result POST from --threads concurrent clients (threads in this process, as the web tier's
  workers run them): results that arrive together are written together.

PostgreSQL's CPU is measured apart: the CPU of the backend process serving each client connection
(read from /proc: PostgreSQL on this machine). docs/capacity.md uses these figures.
`--profile PATH` writes a cProfile (pstats) of a quarter of each path's requests, for a look at
where the time goes.
"""

from __future__ import annotations

import base64
import cProfile
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Row, bench_args, finish, fresh_database, manage, production_env

NAME = "request_costs"
DB = "smatch_bench_request_costs"
CC = "NL"


def _setup_django() -> None:
    env = production_env(fresh_database(DB))
    manage(env, "migrate", "--noinput", "-v", "0")
    for key in ("DJANGO_ENV", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "CELERY_BROKER_URL",
                "SECURE_SSL_REDIRECT", "OUTBOUND_ALLOW_PRIVATE"):
        os.environ[key] = env[key]
    os.environ["DJANGO_SETTINGS_MODULE"] = "smatch.settings"
    import django

    django.setup()


def _fleet(n: int, pid: str):
    """A registered CPO, n ACTIVE sessions, a running activation with one pending cap and call each."""
    from flexibility.models import Activation, Curtailment, Signal
    from flexibility.services import create_brp
    from ocpi import services
    from ocpi.models import ChargingProfileCall, OcpiParty, OcpiPartyRole, Session

    party, token = services.issue_token(f"costs CPO {pid} {time.time_ns()}")
    OcpiParty.objects.filter(pk=party.pk).update(status=OcpiParty.Status.REGISTERED, country_code=CC, party_id=pid)
    OcpiPartyRole.objects.create(party=party, country_code=CC, ocpi_party_id=pid, role="CPO")
    now = datetime.now(UTC)
    Session.objects.bulk_create(
        [Session(party_id=party.pk, country_code=CC, ocpi_party_id=pid, session_id=f"S{i:07d}",
                 location_id=f"L{i}", evse_uid=f"E{i}", connector_id="1", status="ACTIVE",
                 start_date_time=now - timedelta(hours=1), kwh=1.0, last_updated=now - timedelta(minutes=30),
                 phases=3, last_current_a=16.0, first_active_at=now) for i in range(n)], batch_size=2000)
    sessions = list(Session.objects.filter(party_id=party.pk).order_by("pk").values_list("pk", flat=True))
    brp, _ = create_brp(f"costs BRP {time.time_ns()}")
    signal = Signal.objects.create(brp=brp, external_id=f"costs {pid}", direction="reduce_consumption",
                                   end_time=now + timedelta(hours=1), status=Signal.Status.RELAYED)
    activation = Activation.objects.create(signal=signal, relayed_at=now, ends_at=now + timedelta(hours=1),
                                           status=Activation.Status.ACTIVE, skipped={"x": 0})
    Curtailment.objects.bulk_create(
        [Curtailment(activation=activation, session_id=pk, starts_at=now, ends_at=now + timedelta(hours=1),
                     limit_a=8.0, expected_kw=5.0, status=Curtailment.Status.PENDING) for pk in sessions],
        batch_size=2000)
    caps = dict(Curtailment.objects.filter(activation=activation).values_list("session_id", "pk"))
    calls = [ChargingProfileCall(id=uuid.uuid4(), session_id=pk, kind="SET", purpose_id=caps[pk], created_at=now,
                                 sent_at=now, answered_at=now, http_status=200, response_result="ACCEPTED")
             for pk in sessions]
    ChargingProfileCall.objects.bulk_create(calls, batch_size=2000)
    return token, [c.id for c in calls], now


def _period(start: datetime, amps: float, kwh: float) -> dict:
    return {"start_date_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "dimensions": [
        {"type": "CURRENT", "volume": amps}, {"type": "ENERGY", "volume": kwh}]}


def _backend_pid() -> int:
    """This thread's PostgreSQL backend process (its CPU is PostgreSQL's share of our requests)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _measure(client, requests: list[tuple[str, str, str]], auth: str, profile: cProfile.Profile | None = None):
    """(CPU ms per request, PostgreSQL CPU ms per request, statements per request, answers not OCPI 1000)."""
    from django.db import connection

    from bench.common import cpu_seconds

    bad, statements = 0, [0]
    backend = _backend_pid()
    pg0 = cpu_seconds([backend])

    def count(execute, sql, params, many, context):
        statements[0] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        cpu0 = time.process_time()
        if profile:
            profile.enable()
        for method, path, body in requests:
            answer = client.generic(method, path, body, content_type="application/json", HTTP_AUTHORIZATION=auth,
                                    HTTP_HOST="127.0.0.1")
            bad += answer.status_code >= 300 or b'"status_code":1000' not in answer.content
        if profile:
            profile.disable()
        cpu = time.process_time() - cpu0
    n = len(requests)
    return cpu / n * 1000, (cpu_seconds([backend]) - pg0) / n * 1000, statements[0] / n, bad


def _measure_threads(requests: list[tuple[str, str, str]], auth: str, threads: int):
    """The same from `threads` concurrent clients (as the web tier's threads): CPU and statements per request."""
    import threading

    from django.db import connection
    from django.test import Client

    from bench.common import cpu_seconds

    counts, lock = {"statements": 0, "bad": 0, "pg": 0.0}, threading.Lock()

    def run(share: list[tuple[str, str, str]]) -> None:
        client, mine = Client(), {"statements": 0, "bad": 0, "pg": 0.0}
        backend = _backend_pid()
        pg0 = cpu_seconds([backend])

        def count(execute, sql, params, many, context):
            mine["statements"] += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            for method, path, body in share:
                answer = client.generic(method, path, body, content_type="application/json",
                                        HTTP_AUTHORIZATION=auth, HTTP_HOST="127.0.0.1")
                mine["bad"] += answer.status_code >= 300 or b'"status_code":1000' not in answer.content
        mine["pg"] = cpu_seconds([backend]) - pg0
        connection.close()
        with lock:
            for key in counts:
                counts[key] += mine[key]

    workers = [threading.Thread(target=run, args=(requests[k::threads],)) for k in range(threads)]
    cpu0 = time.process_time()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    n = len(requests)
    return ((time.process_time() - cpu0) / n * 1000, counts["pg"] / n * 1000, counts["statements"] / n,
            counts["bad"])


def _json_ms(bodies: list[str]) -> float:
    """CPU ms per request of the stdlib JSON work (parse the body, write the envelope): what orjson could save."""
    import json

    envelope = {"status_code": 1000, "timestamp": "2026-12-02T19:00:00Z"}
    cpu0 = time.process_time()
    for body in bodies:
        json.loads(body.encode().decode("utf-8"))
        json.dumps(envelope, separators=(",", ":"))
    return (time.process_time() - cpu0) / len(bodies) * 1000


def main() -> int:
    p = bench_args(__doc__)
    p.add_argument("--n", type=int, default=2000, help="requests per path and repetition")
    p.add_argument("--threads", type=int, default=16, help="concurrent clients of the threaded result phase")
    p.add_argument("--profile", type=Path, help="write a cProfile (pstats) of a quarter of each path's "
                   "requests to PROFILE.<path> (those are left out of the figures)")
    args = p.parse_args()
    n = 300 if args.quick else args.n
    _setup_django()
    import json

    from django.test import Client

    samples: dict[str, tuple[list[float], ...]] = {
        k: ([], [], [], []) for k in ("result POST", "session PATCH", "session PUT")}
    for rep in range(args.repeat):
        pid = f"R{rep}"
        token, call_ids, now = _fleet(n, pid)
        auth = "Token " + base64.b64encode(token.encode()).decode()
        client = Client()
        base = f"/ocpi/2.2.1/sessions/{CC}/{pid}/"
        body = json.dumps({"result": "ACCEPTED"})
        results = [("POST", f"/ocpi/2.2.1/chargingprofiles/results/{cid}", body) for cid in call_ids]
        step = now.replace(microsecond=0)
        patches = [("PATCH", f"{base}S{i:07d}", json.dumps({
            "kwh": 2.5, "status": "ACTIVE", "last_updated": step.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "x_phase_currents_a": [8.0, 8.0, 8.0],
            "charging_periods": [_period(step - timedelta(minutes=5), 8.0, 1.5)]})) for i in range(n)]
        puts = [("PUT", f"{base}N{rep}x{i:06d}", json.dumps({
            "country_code": CC, "party_id": pid, "id": f"N{rep}x{i:06d}",
            "start_date_time": step.strftime("%Y-%m-%dT%H:%M:%SZ"), "kwh": 0.0,
            "cdr_token": {"country_code": CC, "party_id": pid, "uid": f"U{i}", "type": "RFID", "contract_id": f"C{i}"},
            "auth_method": "WHITELIST", "location_id": f"NL{i}", "evse_uid": f"NE{i}", "connector_id": "1",
            "currency": "EUR", "status": "ACTIVE", "last_updated": step.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "x_phase_currents_a": [16.0, 16.0, 16.0]})) for i in range(n)]
        for label, reqs in (("result POST", results), ("session PATCH", patches)):
            samples.setdefault(f"{label}: JSON parse + envelope (stdlib)", ([],))[0].append(
                _json_ms([body for _, _, body in reqs]))
        for label, reqs in (("result POST", results), ("session PATCH", patches), ("session PUT", puts)):
            if args.profile and rep == 0:  # profiled requests are slower: profile a separate share
                profile = cProfile.Profile()
                _measure(client, reqs[: n // 4], auth, profile)
                reqs = reqs[n // 4 :]
                args.profile.parent.mkdir(parents=True, exist_ok=True)
                profile.dump_stats(f"{args.profile}.{label.replace(' ', '_')}")
            figures = _measure(client, reqs, auth)
            for bucket, value in zip(samples[label], figures, strict=True):
                bucket.append(value)
            print(f"rep {rep + 1} {label}: {figures[0]:.2f} CPU ms, PostgreSQL {figures[1]:.2f} CPU ms, "
                  f"{figures[2]:.2f} statements, {figures[3]} not 1000", flush=True)
        token, call_ids, now = _fleet(n, f"T{rep}")  # a second fleet: its results arrive from concurrent clients
        auth = "Token " + base64.b64encode(token.encode()).decode()
        label = f"result POST, {args.threads} threads"
        figures = _measure_threads(
            [("POST", f"/ocpi/2.2.1/chargingprofiles/results/{cid}", body) for cid in call_ids], auth, args.threads)
        for bucket, value in zip(samples.setdefault(label, ([], [], [], [])), figures, strict=True):
            bucket.append(value)
        print(f"rep {rep + 1} {label}: {figures[0]:.2f} CPU ms, PostgreSQL {figures[1]:.2f} CPU ms, "
              f"{figures[2]:.2f} statements, {figures[3]} not 1000", flush=True)
    rows: list[Row] = []
    case = f"{n} requests, in-process"
    for label, figures in samples.items():
        if len(figures) == 1:
            rows.append(Row.of(NAME, case, label, "ms", figures[0], note="json.loads + json.dumps, per request"))
            continue
        cpu, pg, statements, bad = figures
        rows += [
            Row.of(NAME, case, f"{label}: CPU per request", "ms", cpu,
                   note="this process's CPU (Django stack + our code + driver); PostgreSQL's not included"),
            Row.of(NAME, case, f"{label}: PostgreSQL CPU per request", "ms", pg,
                   note="CPU of the PostgreSQL backend processes serving these requests (/proc)"),
            Row.of(NAME, case, f"{label}: statements per request", "count", statements,
                   note="statements sent by Django (execute_wrapper); BEGIN/COMMIT not counted"),
            Row.of(NAME, case, f"{label}: answers not 1000", "count", bad, target="0", ok=lambda v: v == 0),
        ]
    finish(rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
