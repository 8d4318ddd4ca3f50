"""The web tier's command line (smatch/web.py): what the deployment, the end-to-end tests and the benchmarks
start. The server itself is exercised by tests/integration/test_result_burst.py (`python -m smatch.web`)."""

from __future__ import annotations

import itertools
import sys

import pytest

from smatch import web


def test_the_command_serves_the_wsgi_application_with_the_given_processes_and_threads():
    argv = web.command("127.0.0.1:8123", workers=3, threads=16)
    assert argv[:3] == [sys.executable, "-m", "granian"]
    pairs = dict(itertools.pairwise(argv))
    assert pairs["--interface"] == "wsgi" and "smatch.wsgi:application" in argv
    assert (pairs["--host"], pairs["--port"], pairs["--workers"], pairs["--blocking-threads"]) == (
        "127.0.0.1", "8123", "3", "16")
    assert "--no-access-log" in argv and "--respawn-failed-workers" in argv


def test_an_ipv6_bind_loses_its_brackets_and_extra_options_come_last():
    argv = web.command("[::]:8000", workers=1, threads=2, access_log=True, extra=["--log-config", "x.json"])
    assert argv[argv.index("--host") + 1] == "::" and argv[argv.index("--port") + 1] == "8000"
    assert "--access-log" in argv and argv[-2:] == ["--log-config", "x.json"]


@pytest.mark.parametrize(("name", "value", "message"), [
    ("WEB_CONCURRENCY", "four", "WEB_CONCURRENCY must be a whole number (got 'four')"),
    ("WEB_THREADS", "0", "WEB_THREADS must be at least 1 (got 0)"),
])
def test_a_bad_setting_stops_the_start_with_its_name(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    monkeypatch.setattr(web.os, "execv", lambda *_: pytest.fail("must not start"))
    with pytest.raises(SystemExit) as stopped:
        web.main([])
    assert str(stopped.value) == message


def test_the_environment_sets_the_defaults_and_the_flags_win(monkeypatch):
    started = []
    monkeypatch.setattr(web.os, "execv", lambda path, argv: started.append(argv))
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("WEB_THREADS", "4")
    monkeypatch.setenv("WEB_BIND", "127.0.0.1:9000")
    web.main([])
    web.main(["--threads", "8", "--bind", "0.0.0.0:8001"])
    first, second = started
    assert first == web.command("127.0.0.1:9000", 3, 4)
    assert second == web.command("0.0.0.0:8001", 3, 8)
