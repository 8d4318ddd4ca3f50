"""The operator console in a real headless Chromium at 1366x768, against the local server a newcomer runs.

`manage.py serve --simulator` (the README's first command) runs in a subprocess on a database file of
its own: web, worker, beat and a simulated CPO in scaled time. A manual-policy BRP posts two signals;
the operator vetoes one with a reason and relays the other, watches the chart fill while the caps
come into force, and stops the activation; an analyst sees the same console without buttons.
Screenshots of every step land in test-artifacts/browser/console/.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.browser.conftest import ARTIFACTS
from tests.firsthour.test_first_hour import ROOT, embedded_env, free_port, readme_command, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("chromium_available")]

FOLDER = ARTIFACTS / "console"
VIEWPORT = {"width": 1366, "height": 768}


@dataclass
class LocalRun:
    base: str
    password: str
    brp_token: str
    env: dict


@pytest.fixture
def local_server(tmp_path):
    db = tmp_path / "console.sqlite3"
    env = embedded_env(db)
    port = free_port()
    log = tmp_path / "serve.log"
    command = [*readme_command("manage.py", "serve", "--simulator"), "--points", "120", "--db",
               str(db), f"127.0.0.1:{port}"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        banner = wait_for(lambda: "one-time password" in log.read_text() and log.read_text(), 60, "the banner")
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _up(base), 30, "the web server")
        yield LocalRun(base, re.search(r"one-time password (\S+)", banner)[1],
                       re.search(r"Authorization: Token (\S+?)'", banner)[1], env)
    finally:
        proc.terminate()
        proc.wait(15)


def _up(base: str) -> bool:
    try:
        return requests.get(f"{base}/", timeout=2).ok
    except requests.ConnectionError:
        return False


@pytest.fixture
def shots_folder() -> Path:
    FOLDER.mkdir(parents=True, exist_ok=True)
    for old in FOLDER.glob("*.png"):
        old.unlink()
    return FOLDER


class Screen:
    """One actor's browser at 1366x768: log in, screenshot each step (the visible screen, as a user sees it)."""

    def __init__(self, browser, base: str, prefix: str) -> None:
        self.context = browser.new_context(base_url=base, viewport=VIEWPORT)
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.prefix, self.step = prefix, 0

    def shot(self, name: str) -> None:
        self.step += 1
        self.page.screenshot(path=str(FOLDER / f"{self.prefix}-{self.step:02d}-{name}.png"))

    def log_in(self, username: str, password: str) -> None:
        self.page.goto("/admin/console/")  # the login page first, then back to the console
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.page.click("input[type=submit]")
        self.page.wait_for_selector("#console")


def post_signal(run: LocalRun, external_id: str) -> str:
    answer = requests.post(f"{run.base}/api/v1/signals/", headers={"Authorization": f"Token {run.brp_token}"},
                           json={"external_id": external_id, "direction": "reduce_consumption"}, timeout=10)
    assert answer.status_code == 202, answer.text
    return answer.json()["url"]


def brp_view(run: LocalRun, url: str) -> dict:
    return requests.get(url, headers={"Authorization": f"Token {run.brp_token}"}, timeout=10).json()


def chart_last(page) -> str:
    return page.locator("#power-chart").get_attribute("data-last") or ""


def test_operator_vetoes_relays_watches_and_stops_and_analyst_reads(local_server, chromium, shots_folder):
    from playwright.sync_api import expect

    run = local_server
    # Sessions flow in from the simulator before the BRP asks (the preview counts them).
    wait_for(lambda: requests.get(f"{run.base}/ocpi/versions").status_code in (401, 200), 10, "OCPI")
    time.sleep(3)
    kept = post_signal(run, "evening-1")
    vetoed = post_signal(run, "evening-2")

    op = Screen(chromium, run.base, "1-operator")
    op.log_in("admin", run.password)
    page = op.page
    rows = page.locator("tr.signal")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator(".external-id")).to_have_text("evening-1")  # the oldest leads
    expect(rows.nth(0).locator(".brp")).to_have_text("Local supplier")
    expect(page.locator(".preview")).to_contain_text("sessions capped at 8 A")
    eligible = int(page.locator(".preview .eligible").inner_text())
    assert eligible > 0
    assert "{" not in page.locator(".console-pending").inner_text()
    op.shot("two-signals-waiting")

    second = rows.filter(has_text="evening-2")
    second.locator("input[name=reason]").fill("local grid congestion, DSO asked us to hold")
    op.shot("veto-reason-typed")
    second.locator("button.veto").click()
    expect(page.locator(".messagelist")).to_contain_text("Local supplier #evening-2: vetoed")
    expect(page.locator("tr.signal")).to_have_count(1)
    op.shot("vetoed")

    page.locator("tr.signal", has_text="evening-1").locator("button.relay").click()
    expect(page.locator(".messagelist")).to_contain_text("Local supplier #evening-1: relayed")
    expect(page.locator("#activation-panel h2")).to_contain_text("Running activation")
    op.shot("relayed")

    # The chart fills as states arrive: its last instant moves on, and caps come into force.
    page.wait_for_selector("#power-chart polyline.power")
    first_last = chart_last(page)
    in_force = page.locator("td[data-state='in force']")
    wait_for(lambda: int(in_force.inner_text() or 0) > 0, 30, "caps in force on the console")
    page.wait_for_selector("#power-chart polyline.power")
    op.shot("chart-filling")
    wait_for(lambda: chart_last(page) > first_last, 20, "the chart to extend")
    expect(page.locator(".latency td").first).to_contain_text(" s")
    page.wait_for_selector("#power-chart polyline.power")
    op.shot("chart-filled-more")
    assert brp_view(run, kept)["status"] in ("relayed", "active")

    # The analyst sees the same console, read only.
    an = Screen(chromium, run.base, "2-analyst")
    an.log_in("anna", _analyst_password(run))
    expect(an.page.locator(".readonly-note")).to_contain_text("need the operator role")
    expect(an.page.locator("#console button")).to_have_count(0)
    expect(an.page.locator("#activation-panel h2")).to_contain_text("Running activation")
    an.page.wait_for_selector("#power-chart polyline.power")
    an.shot("read-only-console")

    # The operator stops the activation: every cap is restored at once.
    page.locator("button.stop").click()
    expect(page.locator(".messagelist")).to_contain_text("Local supplier #evening-1: stopped")
    wait_for(lambda: brp_view(run, kept)["status"] == "restored", 30, "the restore after Stop now")
    page.reload()
    expect(page.locator("#activation-panel h2")).to_contain_text("Last activation (ended)")
    expect(page.locator(".figures .status")).to_contain_text("stopped early")
    page.wait_for_selector("#power-chart polyline.power")
    op.shot("stopped")

    assert brp_view(run, vetoed)["veto_reason"] == "local grid congestion, DSO asked us to hold"
    assert brp_view(run, kept)["activation"]["stopped_early"] is True


def _analyst_password(run: LocalRun) -> str:
    done = subprocess.run([*readme_command("manage.py", "staff_create")[:3], "anna", "--role", "analyst"],
                          cwd=ROOT, env=run.env, check=True, capture_output=True, text=True)
    return done.stdout.strip()
