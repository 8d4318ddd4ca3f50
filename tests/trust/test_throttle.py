"""Rate limits: per caller, counted in the shared cache (so every web process counts one limit),
letting requests through when the cache is down, and on the settlement API as on the BRP API."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from flexibility.api.auth import BrpUser
from smatch import web
from smatch.rest.throttles import BrpRateThrottle, CallerRateThrottle
from tests import webtier

ROOT = Path(__file__).resolve().parents[2]


def _rates(settings, **rates: str) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates}}


def test_the_brp_api_limits_each_brp_on_its_own(client, settings, brp, other_brp, monkeypatch):
    _rates(settings, brp="2/min")
    monkeypatch.setattr(CallerRateThrottle, "timer", lambda self: 6_000_020.0)  # not straddling a minute's end
    mine = [client.get("/api/v1/signals/", HTTP_AUTHORIZATION=f"Token {brp.api_token}") for _ in range(3)]
    assert [r.status_code for r in mine] == [200, 200, 429]
    assert 0 < int(mine[-1]["Retry-After"]) <= 60
    assert client.get("/api/v1/signals/", HTTP_AUTHORIZATION=f"Token {other_brp.api_token}").status_code == 200


def test_the_settlement_api_is_throttled_per_caller(client, settings, analyst, brp, settled, monkeypatch):
    from django.contrib.auth.models import User

    _rates(settings, settlement="3/min")
    # One instant for every request: the windows are whole minutes, and a count straddling a minute's
    # end would start again (CI once saw that).
    monkeypatch.setattr(CallerRateThrottle, "timer", lambda self: 6_000_020.0)
    client.force_login(analyst)
    answers = [client.get("/api/v1/settlement/runs/").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    client.force_login(User.objects.create_superuser("sue-super"))  # another caller: its own count
    assert client.get("/api/v1/settlement/runs/").status_code == 200
    client.logout()
    token = {"HTTP_AUTHORIZATION": f"Token {brp.api_token}"}
    assert [client.get("/api/v1/settlement/activations/", **token).status_code for _ in range(4)] == [200] * 3 + [429]


def test_a_limit_reopens_in_the_next_window(client, settings, brp, monkeypatch):
    _rates(settings, brp="1/min")
    now = [6_000_020.0]  # 20 s into a minute (6,000,000 s is a whole number of minutes)
    monkeypatch.setattr(CallerRateThrottle, "timer", lambda self: now[0])
    call = lambda: client.get("/api/v1/signals/", HTTP_AUTHORIZATION=f"Token {brp.api_token}")  # noqa: E731
    assert [call().status_code, call().status_code] == [200, 429]
    assert call()["Retry-After"] == "40"  # the rest of the minute
    now[0] += 40
    assert call().status_code == 200


def test_a_cache_that_does_not_answer_lets_requests_through(client, settings, brp, monkeypatch):
    """Nothing listens on the discard port: the limit is not counted, the API still answers.

    The log is caught on the module's logger itself, not with caplog, so the test also holds under
    `-p no:logging` (the command docs/reliability.md gives for tests/trust)."""
    from smatch.rest import throttles

    logged = []
    monkeypatch.setattr(throttles.log, "exception", lambda msg, *args: logged.append(msg % args))
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:9/0", "OPTIONS": {"socket_connect_timeout": 1}}}
    _rates(settings, brp="1/min")
    answers = [client.get("/api/v1/signals/", HTTP_AUTHORIZATION=f"Token {brp.api_token}").status_code
               for _ in range(2)]
    assert answers == [200, 200]
    assert len(logged) == 2 and all("rate limit cache unavailable" in line for line in logged)


@examples(max_examples=60, deadline=None)
@given(limit=st.integers(1, 5), offsets=st.lists(st.floats(0, 299.999, allow_nan=False), max_size=40))
def test_each_window_lets_exactly_min_of_limit_and_demand_through(limit, offsets):
    """Invariant of the fixed window: per minute, allowed = min(limit, requests); the rest refused."""
    from django.core.cache import caches
    from django.test import override_settings

    caches_setting = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                  "LOCATION": f"prop-{uuid.uuid4().hex}"}}
    with override_settings(CACHES=caches_setting):
        throttle = BrpRateThrottle()
        throttle.rate = f"{limit}/min"
        throttle.num_requests, throttle.duration = limit, 60
        request = SimpleNamespace(user=BrpUser(SimpleNamespace(pk=1)))
        allowed, demand = Counter(), Counter()
        for t in sorted(offsets):
            throttle.timer = lambda t=t: 6_000_000.0 + t
            window = int((6_000_000.0 + t) // 60)
            demand[window] += 1
            allowed[window] += throttle.allow_request(request, None)
        assert all(allowed[w] == min(limit, demand[w]) for w in demand)
        caches["default"].clear()


# --- two web workers, one limit ------------------------------------------------------------------------

@pytest.mark.services
@pytest.mark.slow
def test_two_web_workers_share_one_limit(real_services, transactional_db, brp, tmp_path):
    """20 concurrent BRP requests to the web tier with 2 worker processes and a limit of 5/min: exactly 5
    answered, 15 refused, and both processes answered some (the access log names each one's pid).
    With a per-process count (local memory), up to 10 would get through."""
    import requests

    from tests.integration.conftest import _database_url, _worker_env, free_port, wait_for

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**_worker_env(url), "DATABASE_URL": _database_url(), "BRP_THROTTLE_RATE": "5/min",
           "CACHE_KEY_PREFIX": f"test-{uuid.uuid4().hex}", "CELERY_BROKER_URL": real_services["broker"]}
    env.pop("CACHE_URL", None)  # production's default: the broker's Redis
    log = tmp_path / "access.log"
    log_config = tmp_path / "logging.json"  # the access log names the worker process of each request
    log_config.write_text(json.dumps({
        "formatters": {"access": {"()": "logging.Formatter", "fmt": "pid=<%(process)d> %(message)s"}},
        "handlers": {"access": {"formatter": "access", "class": "logging.FileHandler", "filename": str(log)}},
        "loggers": {"granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False}}}))
    access_format = ["--log-config", str(log_config), "--access-log-fmt", "path=%(path)s status=%(status)d"]
    command = web.command(f"127.0.0.1:{port}", workers=2, threads=4, access_log=True, extra=access_format)
    with webtier.serving(command, env, url, probe="/api/schema/", timeout_s=30, ok=lambda status: status == 200):
        # The second worker may still be importing when the first answers: the burst below must reach
        # both, so wait until each has answered a request of its own.
        wait_for(lambda: _both_workers_answer(f"{url}/api/schema/", log), 60, "both web workers to answer")
        headers = {"Authorization": f"Token {brp.api_token}", "Connection": "close"}
        if time.time() % 60 > 40:  # the windows are whole minutes: a burst across a minute's end counts twice
            time.sleep(61 - time.time() % 60)
        with ThreadPoolExecutor(10) as pool:
            codes = list(pool.map(lambda _: requests.get(f"{url}/api/v1/signals/", headers=headers, timeout=30)
                                  .status_code, range(20)))
        assert Counter(codes) == {200: 5, 429: 15}
        served = wait_for(lambda: _signal_lines(log, 20), 10, "the access log")
        assert len({pid for pid, _ in served}) == 2, served  # both worker processes counted into one limit


def _both_workers_answer(url: str, log) -> bool:
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: webtier.answers(url), range(8)))
    pids = re.findall(r"pid=<(\d+)> path=/api/schema/", log.read_text()) if log.exists() else []
    return len(set(pids)) >= 2


def _signal_lines(log, expected: int) -> list[tuple[str, str]] | None:
    lines = re.findall(r"pid=<(\d+)> path=/api/v1/signals/ status=(\d+)", log.read_text()) if log.exists() else []
    signals = [(pid, status) for pid, status in lines]
    return signals if len(signals) >= expected else None
