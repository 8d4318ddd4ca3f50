"""Secrets: tokens stored only as hashes (read back from the database rows), secrets only from the
environment, and production settings that refuse to start with debug on or the default secret."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from ocpi_client.models import OcpiParty

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


def _django(env: dict, code: str = "import django; django.setup()") -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "DJANGO_ENV")}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**clean, "DJANGO_SETTINGS_MODULE": "smatch.settings", **env})


@pytest.mark.parametrize("env", [
    {"DJANGO_ENV": "production"},  # debug on by default and the development secret
    {"DJANGO_ENV": "production", "DEBUG": "false"},  # the development secret
    {"DJANGO_ENV": "production", "SECRET_KEY": "a-real-secret-of-our-own-0123456789"},  # debug still on
    {"DJANGO_ENV": "production", "DEBUG": "true", "SECRET_KEY": "a-real-secret-of-our-own-0123456789"},
], ids=["defaults", "default-secret", "debug-default", "debug-true"])
def test_production_refuses_to_start_with_debug_or_the_default_secret(env):
    result = _django(env)
    assert result.returncode != 0
    assert "DJANGO_ENV=production needs DEBUG=false and a SECRET_KEY of your own" in result.stderr


def test_production_starts_with_its_own_secret_and_debug_off():
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)"
    result = _django({"DJANGO_ENV": "production", "DEBUG": "false", "SECRET_KEY": "env-secret-xyz-0123456789"}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "env-secret-xyz-0123456789"]
