"""The pages a newcomer opens first: landing, API docs (offline), branded admin."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.core.management import CommandError, call_command
from django.test import Client

from smatch.roles import ANALYSTS, OPERATORS

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
URL_IN_SCRIPT = re.compile(r"""["'](?:https?:)?//[^"']+["']""")


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_the_api_docs_reference_no_external_host(client: Client, db, path):
    page = client.get(path)
    assert page.status_code == 200
    html = page.content.decode()
    assets = ASSET.findall(html)
    assert assets, "the page loads its viewer from somewhere"
    assert all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    assert URL_IN_SCRIPT.findall(html) == []
    for asset in assets:  # and every file it names is one we ship
        if asset.startswith("/static/"):
            assert finders.find(asset.removeprefix("/static/").split("?")[0]), asset


def test_landing_page_links_admin_docs_and_ocpi(client: Client, db):
    page = client.get("/")
    assert page.status_code == 200
    links = set(ASSET.findall(page.content.decode()))
    assert {"/admin/", "/admin/console/", "/api/docs/", "/ocpi/versions"} <= links
    assert all(link.startswith("/") for link in links)


def test_the_admin_carries_the_product_name_and_links_the_console(client: Client, operator):
    assert "SMATCH open SCSP" in client.get("/admin/login/").content.decode()
    client.force_login(operator)
    page = client.get("/admin/").content.decode()
    assert "SMATCH open SCSP" in page and 'href="/admin/console/"' in page


@pytest.mark.parametrize(("role", "group"), [("operator", OPERATORS), ("analyst", ANALYSTS)])
def test_staff_create_prints_a_password_that_logs_in(db, capsys, role, group):
    call_command("staff_create", "nina", "--role", role)
    out = capsys.readouterr()
    password = out.out.strip()
    assert len(password) >= 12 and "one-time password" not in out.out
    assert f"created as {role}" in out.err
    client = Client()
    assert client.login(username="nina", password=password)
    from django.contrib.auth.models import User

    user = User.objects.get(username="nina")
    assert user.is_staff and not user.is_superuser and [g.name for g in user.groups.all()] == [group]


def test_staff_create_refuses_with_a_code(db):
    call_command("staff_create", "nina", "--role", "operator")
    with pytest.raises(CommandError, match=r"exists already \[exists\]"):
        call_command("staff_create", "nina", "--role", "analyst")
    from smatch.staff import StaffRefused, create_staff

    with pytest.raises(StaffRefused) as refused:
        create_staff("boss", "superuser")
    assert refused.value.code == "bad_role"


def test_staff_create_on_a_database_without_tables_says_what_to_run(tmp_path):
    """A fresh clone's default database before the first `serve`: a sentence with a code, no traceback."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}", "CELERY_BROKER_URL": "memory://"}
    done = subprocess.run([sys.executable, "manage.py", "staff_create", "olga", "--role", "operator"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "has no tables yet" in done.stderr and "[no_tables]" in done.stderr and "manage.py serve" in done.stderr


def test_every_product_url_of_the_serve_banner_answers(db):
    """No URL printed at start-up is a debug 404 page (the banner once named /api/v1/, which is none)."""
    from localrun.server import LocalServer, banner

    lines = banner(LocalServer(web_url="http://testserver", worker="worker", brp_token="t", login=("admin", "pw")))
    paths = set(re.findall(r"http://testserver(/[^\s)]*)", "\n".join(lines)))
    assert {"/", "/admin/", "/admin/console/", "/api/v1/signals/", "/api/docs/", "/ocpi/versions"} <= paths
    client = Client()
    for path in paths:
        assert client.get(path).status_code != 404, path  # 302 to the login, 401 without a token, 200


def test_ocpi_commands_say_what_to_give_and_when_there_is_nothing_to_pull(db):
    import io

    err = io.StringIO()
    call_command("ocpi_issue_token", "A CPO", stdout=io.StringIO(), stderr=err)
    assert "our versions URL, http://" in err.getvalue() and err.getvalue().rstrip().endswith("/ocpi/versions")
    err = io.StringIO()
    call_command("ocpi_pull_sessions", stdout=io.StringIO(), stderr=err)
    assert "no registered OCPI party to pull from" in err.getvalue()
