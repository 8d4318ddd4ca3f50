"""A real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, plus typeable staff logins.

Playwright's Python package drives the system Chromium over CDP (`executable_path`), so nothing is
downloaded at test time; its auto-waiting locators and `expect_download` keep the flow short.
Without Chromium or Playwright the tests skip locally and fail in CI (`require`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.db import connections

from tests.conftest import require
from tests.integration.conftest import *  # noqa: F403  (celery_worker_process and the fixtures it uses)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("SMATCH_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium phones home and a closed network refuses it.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
PASSWORD = "typed-in-the-browser-1"


@pytest.fixture
def chromium_available():
    """Skip (locally) or fail (CI) at once when Chromium or Playwright is missing: use it first."""
    require(Path(CHROMIUM).is_file(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require(False, "the playwright package is not installed (requirements-dev.txt)")


@pytest.fixture
def chromium(chromium_available, monkeypatch):
    """A headless Chromium (fresh temporary profile per launch); yields Playwright's Browser."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop running in this thread, which makes Django refuse
    # the ORM calls the test makes between browser steps; they are plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # While that loop runs, Django keys its connections by async context rather than thread, so
        # the test's queries opened connections of their own: close them, or the test database
        # cannot be dropped at the end of the session.
        connections.close_all()


@pytest.fixture
def artifacts() -> Path:
    """test-artifacts/browser/ (git-ignored): screenshots and downloads of the last run."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in [*ARTIFACTS.glob("*.png"), *ARTIFACTS.glob("*.xlsx")]:
        old.unlink()
    return ARTIFACTS


@pytest.fixture
def operator_login(operator):
    """The operator with a password one can type into the login form."""
    operator.set_password(PASSWORD)
    operator.save(update_fields=["password"])
    return operator.username, PASSWORD


@pytest.fixture
def analyst_login(analyst):
    """The analyst with a password one can type into the login form."""
    analyst.set_password(PASSWORD)
    analyst.save(update_fields=["password"])
    return analyst.username, PASSWORD


class Browsing:
    """One actor's browser context: log in, screenshot each step, reload until a page shows something."""

    def __init__(self, browser, base_url: str, folder: Path, prefix: str) -> None:
        self.context = browser.new_context(base_url=base_url, accept_downloads=True,
                                           viewport={"width": 1680, "height": 900})
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.folder, self.prefix, self.step = folder, prefix, 0

    def shot(self, name: str) -> Path:
        self.step += 1
        path = self.folder / f"{self.prefix}-{self.step:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def log_in(self, username: str, password: str) -> None:
        self.page.goto("/admin/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.shot("login")
        self.page.click("input[type=submit]")
        self.page.wait_for_selector("#user-tools")

    def reload_until(self, predicate, timeout_s: float, what: str):
        deadline = time.monotonic() + timeout_s
        while True:
            value = predicate(self.page)
            if value:
                return value
            if time.monotonic() > deadline:
                self.shot("timeout")
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
            time.sleep(0.5)
            self.page.reload()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def browse(chromium, live_server, artifacts):
    """browse(prefix) -> a fresh logged-out Browsing on the live server; closed after the test."""
    opened: list[Browsing] = []

    def open_as(prefix: str) -> Browsing:
        opened.append(Browsing(chromium, live_server.url, artifacts, prefix))
        return opened[-1]

    yield open_as
    for b in opened:
        b.close()
