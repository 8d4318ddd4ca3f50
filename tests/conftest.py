"""Shared fixtures: the clock, Celery mode, and the real-services gate.

Tests marked `services` need a real PostgreSQL and Redis (and start a real Celery worker).
In CI (`CI` set) a missing service fails the test; elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from django.conf import settings

from smatch import celery_app
from smatch.clock import FrozenClock, set_clock

T0 = datetime(2025, 5, 6, 17, 4, tzinfo=UTC)  # a Tuesday evening peak, 4 min into an ISP


def require(condition: bool, reason: str) -> None:
    """Skip (locally) or fail (CI) when a real service the test needs is missing."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI needs this service: {reason}")
    pytest.skip(reason)


@pytest.fixture
def clock():
    """A frozen clock at T0, installed for the product; advance it with `clock.advance(s)`."""
    frozen = FrozenClock(T0)
    set_clock(frozen)
    yield frozen
    set_clock(None)


@pytest.fixture(autouse=True)
def _celery_mode(request):
    """Unit tests run tasks inline; `services` tests talk to a real broker and worker."""
    eager = request.node.get_closest_marker("services") is None
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = eager
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(scope="session")
def real_services():
    """PostgreSQL as the test database and Redis as the broker, or skip/fail with the reason."""
    engine = settings.DATABASES["default"]["ENGINE"]
    require("postgresql" in engine, f"DATABASE_URL is not PostgreSQL (engine {engine})")
    broker = settings.CELERY_BROKER_URL
    require(broker.startswith("redis://"), f"CELERY_BROKER_URL is not Redis ({broker})")
    import redis

    try:
        redis.Redis.from_url(broker, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        require(False, f"Redis at {broker} does not answer: {exc}")
    return {"database": settings.DATABASES["default"], "broker": broker}
