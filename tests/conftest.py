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


# --- named actors -------------------------------------------------------------------------------


@pytest.fixture
def brp(db, clock):
    """An energy supplier whose signals an operator decides on by hand."""
    from flexibility.services import create_brp

    supplier, token = create_brp("Eneco-like supplier")
    supplier.api_token = token
    return supplier


@pytest.fixture
def other_brp(db, clock):
    """Another BRP: must never see or touch the first one's signals."""
    from flexibility.services import create_brp

    supplier, token = create_brp("Another supplier")
    supplier.api_token = token
    return supplier


def _staff(username: str, group: str):
    from django.contrib.auth.models import Group, User

    from smatch.roles import ensure_groups

    ensure_groups()
    user = User.objects.create_user(username, password="pw-" + username, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def operator(db):
    """A CPO operator: relays, vetoes and stops signals in admin."""
    return _staff("olga-operator", "operators")


@pytest.fixture
def analyst(db):
    """An analyst: reads everything, runs settlement, decides nothing."""
    return _staff("anna-analyst", "analysts")
