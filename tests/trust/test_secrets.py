"""Secrets: tokens stored only as hashes (read back from the database rows), secrets only from the
environment, production settings that refuse to start with debug on, the default secret or a short
one, and `check --deploy` clean under the production variables that compose.yaml documents."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.db import connection

from ocpi.models import OcpiParty

ROOT = Path(__file__).resolve().parents[2]


def _rows(table: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
        return cursor.fetchall()


def test_brp_tokens_are_stored_only_as_sha256(brp, other_brp):
    for supplier in (brp, other_brp):
        rows = [r for r in _rows("flexibility_brp") if supplier.name in r]
        assert len(rows) == 1
        assert hashlib.sha256(supplier.api_token.encode()).hexdigest() in rows[0]
        assert not any(supplier.api_token in str(value) for value in rows[0])  # the prefix is 8 of its characters


def test_ocpi_token_we_issue_is_stored_only_as_sha256(db, capsys):
    from django.core.management import call_command

    call_command("ocpi_issue_token", "Hashed CPO")
    token = next(word for word in capsys.readouterr().out.split() if len(word) >= 32)
    party = OcpiParty.objects.get(name="Hashed CPO")
    assert party.token_ours_hash == hashlib.sha256(token.encode()).hexdigest()
    for table in ("ocpi_client_ocpiparty",):
        assert not any(token in str(value) for row in _rows(table) for value in row)


SECRET = "a-real-secret-of-our-own-0123456789-abcdefghijklmnopqrstuvwxyz"  # 63 characters


def _django(env: dict, code: str = "import django; django.setup()", args: tuple = ()) -> subprocess.CompletedProcess:
    # Only what the test gives: a variable of the developer's shell must not decide the outcome.
    keep = ("PATH", "HOME", "LANG", "PYTHONPATH", "DATABASE_URL", "CELERY_BROKER_URL")
    clean = {k: v for k, v in os.environ.items() if k in keep}
    return subprocess.run([sys.executable, *(args or ("-c", code))], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**clean, "DJANGO_SETTINGS_MODULE": "smatch.settings", **env})


@pytest.mark.parametrize("env", [
    {"DJANGO_ENV": "production"},  # debug on by default and the development secret
    {"DJANGO_ENV": "production", "DEBUG": "false"},  # the development secret
    {"DJANGO_ENV": "production", "SECRET_KEY": SECRET},  # debug still on
    {"DJANGO_ENV": "production", "DEBUG": "true", "SECRET_KEY": SECRET},
], ids=["defaults", "default-secret", "debug-default", "debug-true"])
def test_production_refuses_to_start_with_debug_or_the_default_secret(env):
    result = _django(env)
    assert result.returncode != 0
    assert "DJANGO_ENV=production needs DEBUG=false and a SECRET_KEY of your own" in result.stderr


def test_production_starts_with_its_own_secret_and_debug_off():
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)"
    result = _django({"DJANGO_ENV": "production", "DEBUG": "false", "SECRET_KEY": SECRET}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", SECRET]


@pytest.mark.parametrize("secret", ["a", SECRET[:49], "ab" * 40], ids=["one-char", "49-chars", "two-distinct"])
def test_production_refuses_a_short_or_repetitive_secret(secret):
    result = _django({"DJANGO_ENV": "production", "DEBUG": "false", "SECRET_KEY": secret})
    assert result.returncode != 0
    assert "DJANGO_ENV=production needs a SECRET_KEY of at least 50 characters" in result.stderr
    if len(secret) > 3:  # the message never echoes the secret (a one-letter secret is in any text)
        assert secret not in result.stderr


# --- manage.py check --deploy under compose.yaml's variables ---------------------------------------

def compose_production_env(**given: str) -> dict:
    """The web service's environment as compose.yaml documents it: `${X:-default}` takes `given` or the
    default, `${X:?message}` must be given (as `docker compose` would refuse to start without it)."""
    import re

    spec = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["web"]["environment"]

    def value(text: str) -> str:
        def sub(match: re.Match) -> str:
            name, op, default = match.group(1), match.group(2), match.group(3)
            if op == ":?":
                assert name in given, f"compose.yaml requires {name}"
                return given[name]
            return given.get(name, default)

        return re.sub(r"\$\{(\w+)(:-|:\?)([^}]*)\}", sub, str(text))

    return {name: value(text) for name, text in spec.items()}


def _check_deploy(env: dict) -> subprocess.CompletedProcess:
    return _django(env, args=("manage.py", "check", "--deploy", "--fail-level", "WARNING"))


def test_check_deploy_is_clean_under_the_documented_production_variables():
    env = compose_production_env(SECRET_KEY=SECRET)
    assert env["DJANGO_ENV"] == "production" and env["DEBUG"] == "false"
    result = _check_deploy(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(("variable", "value", "check"), [
    ("SECURE_SSL_REDIRECT", "false", "security.W008"), ("SECURE_HSTS_SECONDS", "0", "security.W004"),
    ("SESSION_COOKIE_SECURE", "false", "security.W012"), ("CSRF_COOKIE_SECURE", "false", "security.W016"),
])
def test_check_deploy_names_each_weakened_setting(variable, value, check):
    """The clean run above can fail: each setting turned down is reported by its check."""
    result = _check_deploy({**compose_production_env(SECRET_KEY=SECRET), variable: value})
    assert result.returncode != 0 and check in result.stderr, result.stdout + result.stderr


# --- the shared cache -----------------------------------------------------------------------------

CACHE = ("import django; django.setup(); from django.conf import settings; c = settings.CACHES['default']; "
         "print(c['BACKEND'].rsplit('.', 1)[-1], c.get('LOCATION'))")


@pytest.mark.parametrize(("env", "expected"), [
    ({"CELERY_BROKER_URL": "memory://"}, "LocMemCache smatch"),  # embedded: one process
    ({"CELERY_BROKER_URL": "redis://broker:6379/0"}, "RedisCache redis://broker:6379/0"),  # the broker's Redis
    ({"CELERY_BROKER_URL": "redis://broker:6379/0", "CACHE_URL": "redis://cache:6379/1"},
     "RedisCache redis://cache:6379/1"),
], ids=["embedded", "broker", "cache-url"])
def test_the_rate_limit_cache_follows_the_environment(env, expected):
    result = _django({"CACHE_URL": "", **env}, CACHE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_a_broker_that_is_not_redis_needs_a_cache_url():
    result = _django({"CELERY_BROKER_URL": "amqp://broker:5672//", "CACHE_URL": ""})
    assert result.returncode != 0
    assert "is not Redis: set CACHE_URL" in result.stderr
