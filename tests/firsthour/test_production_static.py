"""Production serves its own CSS and JS: the web tier (smatch.web) with DJANGO_ENV=production, after the
Dockerfile's collectstatic, answers 200 for the admin's, the console's and the API docs' assets.

The server itself is given no static routes; without the static files middleware every one of these is a 404
and the admin, the console and /api/docs/ render unstyled or blank.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.db import connection

from smatch import web
from tests import webtier

ROOT = Path(__file__).resolve().parents[2]
ASSET = re.compile(r"""(?:src|href)\s*=\s*["'](/static/[^"']+)["']""")
SECRET = "production-static-test-" + "k9Qz3vX7pL" * 4

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dockerfile_collectstatic() -> list[str]:
    """The Dockerfile's collectstatic line, its `NAME=value` prefix kept (it names its own environment)."""
    line = next(line for line in (ROOT / "Dockerfile").read_text().splitlines()
                if line.startswith("RUN ") and "collectstatic" in line)
    return shlex.split(line.removeprefix("RUN "))


def _production_env(static_root: Path, broker: str) -> dict[str, str]:
    db = connection.settings_dict
    database_url = (f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
                    f"{db['NAME']}")
    return {**os.environ, "DJANGO_ENV": "production", "DEBUG": "false", "SECRET_KEY": SECRET,
            "SECURE_SSL_REDIRECT": "false", "ALLOWED_HOSTS": "127.0.0.1", "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker, "STATIC_ROOT": str(static_root)}


@pytest.fixture
def production_web(real_services, db, tmp_path):
    """collectstatic as the Dockerfile runs it, then the web tier in production mode on a free port."""
    env = _production_env(tmp_path / "static", real_services["broker"])
    argv = _dockerfile_collectstatic()
    assignments = dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("-"))
    command = [a for a in argv if a not in {f"{k}={v}" for k, v in assignments.items()}]
    assert command[:2] == ["python", "manage.py"], command
    done = subprocess.run([sys.executable, *command[1:]], cwd=ROOT, env={**env, **assignments},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "static" / "admin" / "css" / "base.css").is_file()

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with webtier.serving(web.command(f"127.0.0.1:{port}", workers=1, threads=4), env, url,
                         log_path=tmp_path / "web.log", timeout_s=30):
        yield url


def _assets(url: str, path: str) -> list[str]:
    page = requests.get(url + path, timeout=10)
    assert page.status_code == 200, (path, page.status_code)
    return ASSET.findall(page.text)


def test_the_web_tier_in_production_serves_admin_console_and_api_docs_assets(production_web):
    pages = {path: _assets(production_web, path) for path in ("/admin/login/", "/api/docs/", "/api/redoc/")}
    assert any(a.endswith("admin/css/base.css") for a in pages["/admin/login/"]), pages["/admin/login/"]
    assert any("swagger-ui" in a for a in pages["/api/docs/"]), pages["/api/docs/"]
    assert any("redoc" in a for a in pages["/api/redoc/"]), pages["/api/redoc/"]
    # The console sits behind a login; its files are public like the admin's.
    wanted = {a for assets in pages.values() for a in assets}
    wanted |= {"/static/flexibility/console.js", "/static/flexibility/console.css"}
    answers = {a: requests.get(production_web + a, timeout=10) for a in sorted(wanted)}
    assert {a: r.status_code for a, r in answers.items() if r.status_code != 200} == {}
    css = answers["/static/admin/css/base.css"]
    assert css.headers["Content-Type"].startswith("text/css") and "body" in css.text
    assert answers["/static/flexibility/console.js"].headers["Content-Type"].startswith("text/javascript")
    # WhiteNoise's compressed copy goes to a client that accepts it.
    gz = requests.get(production_web + "/static/admin/css/base.css", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert gz.headers.get("Content-Encoding") == "gzip"


def test_a_missing_static_file_is_a_plain_404(production_web):
    assert requests.get(production_web + "/static/admin/css/no-such.css", timeout=10).status_code == 404
