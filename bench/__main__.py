"""`make bench` / `python -m bench [--quick] [--repeat N] [--only NAME ...] [--no-write]`: every benchmark.

Checks PostgreSQL and Redis first, runs each benchmark script (bench/NAME.py, see bench/common.py for the
contract) in its own process, merges their JSON rows, prints one table and writes docs/benchmarks.md
(machine, exact command, table, targets met or missed). The section between the READING markers of
docs/benchmarks.md is hand-written and kept across runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PG_ADMIN_URL, REDIS_URL, ROOT, Row, fmt, load_rows, table

BENCHMARKS = ["simulator_day", "selection", "settlement_throughput", "request_costs", "intake", "signal_api",
              "dispatch_fanout", "realism"]
NEEDS_SERVICES = {"settlement_throughput", "request_costs", "intake", "signal_api", "dispatch_fanout", "realism"}
DOC = ROOT / "docs" / "benchmarks.md"
READING_START, READING_END = "<!-- READING: hand-written, kept by the runner -->", "<!-- /READING -->"
DEFAULT_READING = "(Profiling notes and what bounds each missed target: edit here; reruns keep this section.)"


def check_services() -> list[str]:
    """What is missing, in words a newcomer can act on (empty when all is up)."""
    problems = []
    try:
        import psycopg2

        conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=3)
        conn.close()
    except Exception as exc:  # any failure means the same to the user
        problems.append(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({str(exc).strip()}); start it "
                        "(user postgres, trust auth) or set BENCH_PG_URL")
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as exc:
        problems.append(f"Redis is not reachable at {REDIS_URL} ({exc}); start it or set BENCH_REDIS_URL")
    return problems


def _first_line(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=10).stdout.strip()
    except OSError:
        return "?"


def machine() -> list[tuple[str, str]]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = "?"
    if Path("/proc/meminfo").exists():
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    pg = redis_v = "?"
    try:
        import psycopg2

        conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=3)
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            pg = cur.fetchone()[0]
        conn.close()
        import redis

        redis_v = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).info("server")["redis_version"]
    except Exception:
        pass
    commit = _first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _first_line(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    return [("cores", str(os.cpu_count())), ("CPU", cpu), ("memory", mem),
            ("Python", platform.python_version()), ("PostgreSQL", pg), ("Redis", redis_v),
            ("git commit", commit + (" (with uncommitted changes)" if dirty else "")),
            ("OS", platform.platform()), ("load average at the start (1/5/15 min)", load)]


def targets(rows: list[Row]) -> list[str]:
    out = []
    for r in rows:
        if r.target is None:
            continue
        where = f"{r.benchmark} / {r.case} / {r.metric}"
        value = f"median {fmt(r.median)} {r.unit} (min {fmt(r.min)}, max {fmt(r.max)}, n={r.n})"
        if r.met:
            out.append(f"- **met**: {where}: {value}, target {r.target}")
        else:
            out.append(f"- **missed**: {where}: {value}, target {r.target}; see Reading for what bounds it")
    return out


def write_doc(rows: list[Row], command: str, skipped: list[str], started_load: list[tuple[str, str]]) -> None:
    reading = DEFAULT_READING
    if DOC.exists():
        text = DOC.read_text()
        if READING_START in text and READING_END in text:
            reading = text.split(READING_START, 1)[1].split(READING_END, 1)[0].strip()
    notes = [f"- {r.benchmark} / {r.case} / {r.metric}: {r.note}" for r in rows if r.note]
    parts = [
        "# Benchmarks",
        "",
        "Written by `python -m bench` (`make bench`); do not edit except the Reading section. "
        "Medians of repeated runs, with min and max as the spread; the machine is shared and noisy.",
        "",
        "## Command",
        "",
        f"```sh\n{command}\n```",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in started_load],
        "",
        "## Results",
        "",
        table(rows),
        "",
        *(["Notes:", "", *notes, ""] if notes else []),
        *([f"Skipped: {', '.join(skipped)}", ""] if skipped else []),
        "## Targets",
        "",
        *targets(rows),
        "",
        "## Reading",
        "",
        READING_START,
        reading,
        READING_END,
        "",
    ]
    DOC.write_text("\n".join(parts))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes and short durations (smoke run)")
    p.add_argument("--repeat", type=int, help="repetitions per case (default: each script's own)")
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    p.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    p.add_argument("--rows", type=Path, help="keep each benchmark's JSON rows here; a benchmark whose file is "
                   "already there is not run again (resume a long run, or add a size measured alone)")
    args = p.parse_args()
    chosen = args.only or BENCHMARKS
    if any(name in NEEDS_SERVICES for name in chosen):
        problems = check_services()
        if problems:
            print("make bench needs PostgreSQL and Redis running:", *problems, sep="\n  - ", file=sys.stderr)
            return 2
    described = machine()
    rows: list[Row] = []
    skipped, failed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.rows or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for name in chosen:
            script = ROOT / "bench" / f"{name}.py"
            if not script.exists():
                print(f"== {name}: skipped, {script.relative_to(ROOT)} does not exist (yet)", flush=True)
                skipped.append(f"{name} (no script)")
                continue
            out = folder / f"{name}.json"
            if args.rows and out.exists():
                print(f"== {name}: rows from {out}", flush=True)
                rows += load_rows(out)
                continue
            cmd = [sys.executable, str(script), "--json", str(out)]
            cmd += ["--quick"] if args.quick else []
            cmd += ["--repeat", str(args.repeat)] if args.repeat else []
            print(f"== {name}: {shlex.join(cmd[1:])}", flush=True)
            if subprocess.run(cmd, cwd=ROOT, check=False).returncode or not out.exists():
                print(f"== {name}: FAILED (see its output above)", flush=True)
                failed.append(name)
                continue
            rows += load_rows(out)
    print()
    print(table(rows) if rows else "no results")
    if skipped or failed:
        print(f"skipped: {skipped}; failed: {failed}")
    command = "python -m bench " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "make bench  # = python -m bench"
    if not args.no_write and rows:
        write_doc(rows, command.strip(), skipped + [f"{n} (failed)" for n in failed], described)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
