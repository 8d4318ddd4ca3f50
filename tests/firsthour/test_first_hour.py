"""The README's commands, run as a newcomer runs them: the local server and the demo (subprocesses).

Each runs on an SQLite file of its own under tmp and the in-memory broker, as on a fresh clone.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
VENV_PYTHON = ".venv/bin/python"

pytestmark = pytest.mark.slow


def readme_commands() -> list[list[str]]:
    """Every command of the README that runs the venv's python, as argv (also inside `TOKEN=$(...)`)."""
    lines = [line.split("#")[0] for line in README.splitlines() if VENV_PYTHON + " " in line]
    return [shlex.split(line[line.index(VENV_PYTHON):].rstrip().removesuffix(")")) for line in lines]


def readme_command(*argv: str) -> list[str]:
    """The README's command with exactly these arguments, else the first that starts with them,
    run with this venv's python."""
    commands = readme_commands()
    for command in [c for c in commands if c[1:] == list(argv)] + commands:
        if command[1:1 + len(argv)] == list(argv):
            return [sys.executable, *command[1:]]
    raise AssertionError(f"the README gives no command {argv}")


def embedded_env(db: Path) -> dict[str, str]:
    dropped = ("SMATCH_CLOCK", "CELERY_TASK_ALWAYS_EAGER", "OCPI_BASE_URL")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    return {**env, "DATABASE_URL": f"sqlite:///{db}", "CELERY_BROKER_URL": "memory://", "SWEEP_INTERVAL_S": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.mark.parametrize("simulated", [False, True], ids=["plain", "with-simulator"])
def test_the_local_server_relays_and_restores_an_auto_brps_signal(tmp_path, simulated):
    db = tmp_path / "local.sqlite3"
    env = embedded_env(db)
    port = free_port()
    log = tmp_path / "serve.log"
    if simulated:  # the first screen's command; the simulated clock 30x instead of 10x keeps the test short
        serve = [*readme_command("manage.py", "serve", "--simulator"), "--speed", "30", "--db", str(db)]
        assert serve[2:4] == ["serve", "--simulator"]
    else:
        serve = readme_command("manage.py", "serve")
        assert serve[2:] == ["serve"]
    with open(log, "wb") as out:
        proc = subprocess.Popen([*serve, f"127.0.0.1:{port}"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        banner = wait_for(lambda: "one-time password" in log.read_text() and log.read_text(), 60, "the banner")
        assert f"{base}/admin/console/" in banner and f"{base}/ocpi/versions" in banner
        assert "worker and beat sweep: threads of this process" in banner
        assert ("CPO simulator" in banner) == simulated
        password = re.search(r"log in as 'admin' with the one-time password (\S+)", banner)[1]
        wait_for(lambda: _answers(f"{base}/"), 30, "the web server")

        login = requests.Session()
        login.get(f"{base}/admin/login/")
        login.post(f"{base}/admin/login/", data={"username": "admin", "password": password,
                                                 "csrfmiddlewaretoken": login.cookies["csrftoken"]})
        assert "Operator console" in login.get(f"{base}/admin/console/").text

        brp = readme_command("manage.py", "brp_create")
        assert brp[3:] == ["My supplier", "--policy", "auto"]
        token = subprocess.run(brp, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout.strip()
        signal = {"external_id": "first-hour-1", "direction": "reduce_consumption"}
        if simulated:  # let sessions flow in first; the activation then runs to the ISP boundary (17:15 simulated)
            wait_for(lambda: "S7-" in login.get(f"{base}/admin/ocpi_client/session/").text, 30,
                     "sessions pushed by the simulator (seed 7)")
        else:  # the system clock: end soon rather than at the next quarter hour
            signal["end_time"] = (datetime.now(UTC) + timedelta(seconds=6)).isoformat()
        posted = requests.post(f"{base}/api/v1/signals/", headers={"Authorization": f"Token {token}"},
                               json=signal, timeout=10)
        assert posted.status_code == 202, posted.text
        url = posted.json()["url"]

        def status() -> dict:
            return requests.get(url, headers={"Authorization": f"Token {token}"}, timeout=10).json()

        relayed = wait_for(lambda: (s := status())["status"] != "received" and s, 20, "the policy relay")
        assert relayed["status"] in ("relayed", "active", "restored"), relayed
        restored = wait_for(lambda: (s := status())["status"] == "restored" and s, 60, "the restore")
        figures = restored["activation"]
        if simulated:
            assert figures["sessions_throttled"] > 0 and figures["outcome"] in ("complete", "partial"), figures
        else:
            assert figures["outcome"] == "no_sessions", figures
        assert figures["latency_ms"]["relayed"] is not None and figures["restored_at"]
        assert "My supplier #first-hour-1" in login.get(f"{base}/admin/console/").text
        # The banner stays on screen: no request line per session push or page view.
        assert '"PUT /ocpi/' not in log.read_text() and '"GET /admin/' not in log.read_text()
    finally:
        proc.terminate()
        proc.wait(15)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def run_demo(tmp_path: Path, figures: Path) -> str:
    demo = [sys.executable, "manage.py", "demo", "--points", "40", "--speed", "30", "--seed", "3",
            "--db", str(tmp_path / "demo.sqlite3"), "--figures", str(figures)]
    done = subprocess.run(demo, cwd=ROOT, env=embedded_env(tmp_path / "unused.sqlite3"), capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Broken pipe" not in done.stderr  # the web server's INFO lines stay out of the demo's story
    return done.stdout


def test_the_demo_reruns_from_a_clean_state_with_the_same_figures(tmp_path):
    assert "make demo" in README and "make clean" in README
    first = run_demo(tmp_path, tmp_path / "first.json")
    second = run_demo(tmp_path, tmp_path / "second.json")  # the same database file: emptied, not reused
    one, two = (json.loads((tmp_path / n).read_text()) for n in ("first.json", "second.json"))
    assert one == two
    assert one["active"] > 0 and one["at_relay"] > 0 and one["still_capped"] == 0
    assert one["active"] == one["at_relay"] + sum(one["skipped"].values())  # every charging session accounted for
    for out in (first, second):
        summary = out.split("Summary", 1)[1]
        assert "{" not in summary and " kW" in summary and " s" in summary
        assert "Next: start the local server" in summary and ".venv/bin/python manage.py serve --simulator" in summary
