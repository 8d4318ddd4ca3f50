"""The product's web tier as a child process, for tests and benches: start it, wait until it answers,
stop it. One helper, so every caller starts `smatch.web`'s command and judges "it is up" the same way."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start(command: Sequence[str], env: dict[str, str], log_path: Path | None = None) -> subprocess.Popen:
    """The server in its own process group (so that stopping it stops its workers too), its output
    appended to `log_path` (or dropped)."""
    if log_path is None:
        return subprocess.Popen(list(command), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT, start_new_session=True)
    with open(log_path, "ab") as out:  # the child holds its own copy of the descriptor
        return subprocess.Popen(list(command), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def answers(url: str, ok: Callable[[int], bool] = lambda status: status < 500) -> bool:
    """True when `url` answers with a status `ok` accepts (a 401 from /ocpi/versions means it is up)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return ok(response.status)
    except urllib.error.HTTPError as exc:
        return ok(exc.code)
    except OSError:
        return False


def wait_answering(proc: subprocess.Popen, url: str, timeout_s: float = 60, log_path: Path | None = None,
                   ok: Callable[[int], bool] = lambda status: status < 500) -> None:
    """Return once `url` answers; raise, with the log's tail, when the server exits or stays silent."""
    deadline = time.monotonic() + timeout_s
    while not answers(url, ok):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path and log_path.exists() else ""
            state = "exited" if proc.poll() is not None else f"did not answer {url} within {timeout_s:.0f} s"
            raise RuntimeError(f"the web tier {state}\n{tail}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 20) -> None:
    """Signal the server's process group (SIGKILL: like a crash); kill it when SIGTERM is not enough."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def serving(command: Sequence[str], env: dict[str, str], url: str, probe: str = "/ocpi/versions",
            log_path: Path | None = None, timeout_s: float = 60,
            ok: Callable[[int], bool] = lambda status: status < 500) -> Iterator[subprocess.Popen]:
    """The web tier running `command`, answering `url` + `probe`; stopped on leaving."""
    proc = start(command, env, log_path)
    try:
        wait_answering(proc, url + probe, timeout_s, log_path, ok)
        yield proc
    finally:
        stop(proc)
