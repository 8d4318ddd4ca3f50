"""A burst of async results through the web tier as deployed (`python -m smatch.web`) on PostgreSQL, and
result batches racing the send claims, the sync answers and the restores over the same caps.

Issue #15: a result answered 2xx is never lost, whatever the batching (`ocpi.services.profiles`,
`_GroupCommit`), and batches of results, claims and restores lock caps in one order (`lifecycle`):
no deadlock between them.
"""

from __future__ import annotations

import random
import sys
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection, transaction

from flexibility import lifecycle
from flexibility.models import Curtailment
from flexibility.services import activations
from ocpi.models import ChargingProfileCall, OcpiParty, hash_token
from ocpi.services import profiles
from tests import webtier
from tests.conftest import T0
from tests.flexibility.test_lifecycle import _activation, _sessions
from tests.ocpi.conftest import b64
from tests.ocpi.loopback import LoopbackServer, ok

from .conftest import _database_url, _worker_env, free_port

S = Curtailment.Status
TOKEN = "burst-cpo-token"
N = 300  # caps pending, one async result each
CLIENTS = 16


@pytest.fixture
def cpo():
    """A CPO that accepts every PUT synchronously and posts no result: the test posts them."""
    with LoopbackServer() as server:
        server.route("PUT", "/cp/", lambda call: ok({"result": "ACCEPTED", "timeout": 30}))
        server.route("DELETE", "/cp/", lambda call: ok({"result": "ACCEPTED", "timeout": 30}))
        yield server


def _party(cpo) -> OcpiParty:
    return OcpiParty.objects.create(
        name="Burst CPO", country_code="NL", party_id="BRS", role="CPO", status=OcpiParty.Status.REGISTERED,
        token_ours_hash=hash_token(TOKEN), token_theirs="scsp-token", versions_url=f"{cpo.url}/versions",
        endpoints=[{"identifier": "chargingprofiles", "role": "RECEIVER", "url": f"{cpo.url}/cp/"}],
    )


@pytest.fixture
def web_tier(real_services, transactional_db, tmp_path):
    """The product's web tier as deployed: `python -m smatch.web` with its defaults from the environment
    (2 processes, the default threads per process), on the test database."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**_worker_env(url), "DATABASE_URL": _database_url(), "WEB_CONCURRENCY": "2"}
    with webtier.serving([sys.executable, "-m", "smatch.web", "--bind", f"127.0.0.1:{port}"], env, url,
                         log_path=tmp_path / "web.log", timeout_s=30):
        yield url


def _post_all(url: str, results: dict) -> list[tuple]:
    """POST every (call id -> result) from CLIENTS threads at once, each on its keep-alive connection.
    Each client reads the call back (its own database connection) as soon as it got its answer:
    (call id, HTTP status, OCPI status, result committed when answered)."""
    import requests

    items = list(results.items())
    random.Random(15).shuffle(items)
    barrier, local = threading.Barrier(CLIENTS), threading.local()

    def post(item) -> tuple:
        call_id, result = item
        if not hasattr(local, "http"):
            local.http = requests.Session()
            barrier.wait()  # every client connected and ready: one burst
        response = local.http.post(f"{url}/ocpi/2.2.1/chargingprofiles/results/{call_id}", json={"result": result},
                                   headers={"Authorization": f"Token {b64(TOKEN)}"}, timeout=60)
        committed = ChargingProfileCall.objects.filter(id=call_id, result=result).exists()
        return call_id, response.status_code, response.json().get("status_code"), committed

    def run(chunk) -> list[tuple]:
        try:
            return [post(item) for item in chunk]
        finally:
            connection.close()

    chunks = [items[i::CLIENTS] for i in range(CLIENTS)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        return [answer for answers in pool.map(run, chunks) for answer in answers]


@pytest.mark.services
@pytest.mark.slow
def test_a_burst_of_results_is_answered_after_commit_and_recorded_once(web_tier, cpo, brp, clock):
    """300 results (1 in 5 REJECTED) from 16 clients at once: every POST is answered 200/1000 only once
    its result is committed (the client reads it right after the answer), each call holds its result,
    each cap is in force or refused accordingly, no row doubled; results were written in batches
    (several results share one `result_at`, the batch's instant); the same burst again changes nothing."""
    party = _party(cpo)
    _sessions(party, N)
    activation = _activation(brp)
    assert activations.send_caps(activations.plan_activation(activation.pk)) == []
    caps = dict(Curtailment.objects.filter(activation=activation).values_list("pk", "status"))
    assert list(Counter(caps.values()).items()) == [(S.PENDING, N)]
    calls = dict(ChargingProfileCall.objects.filter(kind="SET").values_list("id", "purpose_id"))
    assert sorted(calls.values()) == sorted(caps)
    results = {call_id: "REJECTED" if n % 5 == 0 else "ACCEPTED" for n, call_id in enumerate(sorted(calls))}

    answers = _post_all(web_tier, results)
    assert len(answers) == N
    assert Counter((status, code) for _, status, code, _ in answers) == {(200, 1000): N}
    late = [call_id for call_id, _, _, committed in answers if not committed]
    assert late == [], f"{len(late)} results answered 200 without their result committed"

    rows = sorted(ChargingProfileCall.objects.filter(kind="SET").values_list("id", "result", "result_payload",
                                                                             "result_at"))
    assert {i: (r, p) for i, r, p, _ in rows} == {i: (r, {"result": r}) for i, r in results.items()}
    assert ChargingProfileCall.objects.count() == N and Curtailment.objects.count() == N
    expected = {calls[i]: S.IN_FORCE if r == "ACCEPTED" else S.REFUSED for i, r in results.items()}
    assert dict(Curtailment.objects.values_list("pk", "status")) == expected
    batches = Counter(at for *_, at in rows)
    assert len(batches) < N, "no two results were written together: the burst was not batched"

    again = _post_all(web_tier, results)  # a CPO repeating its results: idempotent
    assert Counter((status, code) for _, status, code, _ in again) == {(200, 1000): N}
    assert sorted(ChargingProfileCall.objects.filter(kind="SET").values_list("id", "result", "result_payload",
                                                                             "result_at")) == rows
    assert dict(Curtailment.objects.values_list("pk", "status")) == expected
    assert ChargingProfileCall.objects.count() == N and Curtailment.objects.count() == N
    print(f"{N} results in {len(batches)} transactions, largest batch {max(batches.values())}")


# --- result batches, claims, answers and restores over the same caps ---------------------------------------

K, ROUNDS = 48, 20  # caps per round; rounds of concurrent batches


def _round_caps(brp, party, sessions, r: int, rng: random.Random) -> dict[int, uuid.UUID]:
    """A fresh activation's caps, each planned, sent (lease lapsed) or pending, with its SET call."""
    activation = _activation(brp, f"race-{r}")
    caps = Curtailment.objects.bulk_create(
        Curtailment(activation=activation, session=s, starts_at=T0, ends_at=activation.ends_at, limit_a=8,
                    expected_kw=3.7, due_at=T0, status=rng.choice([S.PLANNED, S.SENT, S.PENDING, S.PENDING]))
        for s in sessions)
    calls = ChargingProfileCall.objects.bulk_create(
        ChargingProfileCall(session_id=c.session_id, kind="SET", purpose_id=c.pk) for c in caps)
    return {c.pk: call.id for c, call in zip(caps, calls, strict=True)}


def _race(party_pk: int, calls: dict[int, uuid.UUID], seed: int) -> list[tuple[str, BaseException]]:
    """Two result writers (two web processes), a send claiming and answering, another send's answers
    and a restore, all at once over overlapping caps, each on its own connection. A result batch is
    the writer's transaction (`_apply_results` in one atomic block) without its deadlock redo, so a
    deadlock shows."""
    ids = sorted(calls)
    barrier, errors = threading.Barrier(5), []

    def results(n: int) -> None:
        rng = random.Random(seed * 10 + n)
        for _ in range(2):
            batch = [profiles._Pending(party_pk, calls[pk], rng.choice(["ACCEPTED", "REJECTED"]), {})
                     for pk in rng.sample(ids, K // 2)]
            with transaction.atomic():
                profiles._apply_results(batch)

    def claim_and_answer() -> None:
        claimed = lifecycle.claim_caps(random.Random(seed).sample(ids, len(ids)), T0, T0 + timedelta(seconds=60))
        lifecycle.answer_caps(claimed, S.PENDING, response="ACCEPTED", result_due_at=T0 + timedelta(seconds=30))

    def answer() -> None:
        lifecycle.answer_caps(random.Random(seed + 1).sample(ids, K // 2), S.PENDING, response="ACCEPTED")

    def restore() -> None:
        lifecycle.move_caps(random.Random(seed + 2).sample(ids, K // 2), S.RESTORED, restored_at=T0)

    def run(name: str, step) -> None:
        try:
            barrier.wait()
            step()
        except BaseException as exc:  # collected: a thread's failure fails the test
            errors.append((name, exc))
        finally:
            connection.close()

    steps = {"results 0": lambda: results(0), "results 1": lambda: results(1), "claim+answer": claim_and_answer,
             "answer": answer, "restore": restore}
    threads = [threading.Thread(target=run, args=item) for item in steps.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_result_batches_claims_answers_and_restores_never_deadlock(real_services, cpo, brp, clock):
    """20 rounds of 5 threads (2 result writers with mixed ACCEPTED/REJECTED batches, a claim + answer,
    an answer, a restore) over the same 48 caps: no deadlock (nor any other error), and every cap
    ends in a state the table allows: restored ones remember a live state, one in force has an
    ACCEPTED result, no row doubled."""
    party = _party(cpo)
    sessions = _sessions(party, K)
    errors: list[tuple[str, BaseException]] = []
    for r in range(ROUNDS):
        calls = _round_caps(brp, party, sessions, r, random.Random(r))
        errors += _race(party.pk, calls, r)
    kinds = Counter((step, str(exc).splitlines()[0]) for step, exc in errors)
    assert errors == [], f"{len(errors)} errors (step, error): {dict(kinds)}"

    assert Curtailment.objects.count() == ChargingProfileCall.objects.count() == K * ROUNDS
    rows = Curtailment.objects.values_list("pk", "status", "restored_from", "restored_at")
    assert {status for _, status, _, _ in rows} <= set(lifecycle.CAP_TRANSITIONS)
    restored = [(pk, was, at) for pk, status, was, at in rows if status == S.RESTORED]
    assert restored and all(was in lifecycle.sources(Curtailment, S.RESTORED) and at == T0 for _, was, at in restored)
    in_force = {pk for pk, status, _, _ in rows if status == S.IN_FORCE}
    results = dict(ChargingProfileCall.objects.filter(purpose_id__in=in_force).values_list("purpose_id", "result"))
    assert in_force and set(results.values()) == {"ACCEPTED"}
