"""Settlement throughput: a simulated day of states with 30 activations, settled from files and from the database.

    python bench/settlement_throughput.py [--quick] [--repeat N] [--json OUT] [--points 1000,4000,16000]
        [--doors files,database,loop] [--root CHECKOUT]

Data: `python -m simulator batch --points N --seed 1 --activations 30` (cached in var/bench/sim_N_s1/).
Each measurement runs in a fresh child process (its peak RSS is the memory figure):

- files: read S.csv + A.csv, `settle_frames` (the compute), write every output (CSV, XLSX, PNG) as the
  `settle` command does (the activation charts drawn by processes while the tables are written).
- database: the states are COPied into a fresh PostgreSQL database (Session, SessionState, Activation rows);
  load with `settlement.io.db`, then `settle_frames` (the same compute).
Every child's CPU time (user + system, from the parent's rusage of its children) is recorded beside the
wall time: the box is shared, so wall time alone says as much about the neighbours as about the code; the
load average before and after each case is in the row's note. `--doors files` measures the file door only
(no PostgreSQL needed). `--root CHECKOUT` runs the children on another checkout's code (e.g. the commit
before a change, extracted with `git archive COMMIT | tar -x -C DIR`) with this script and the same data,
for before/after rows from one command.

- loop: a plain per-session pandas loop doing the core of the same work on the same frame (per session:
  sort, clip, energy interpolated on the 60 s grid, E(t_clear) - E(t_signal); then the aggregate power and a
  trapezoid baseline per activation). It has no step shape, flags, edges, KPIs or exports, so the ratio
  understates the core's advantage. Measured in the same run, printed as loop / core.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Row, bench_args, finish, fresh_database, manage, production_env

BENCH = "settlement"
ROOT_VARIABLE = "SETTLEMENT_BENCH_ROOT"
DB = "smatch_h4_bench_settle"
SEED = 1


def dataset(points: int) -> Path:
    """var/bench/sim_N_s1/ with S.csv and A.csv (made once with the simulator CLI)."""
    out = ROOT / "var" / "bench" / f"sim_{points}_s{SEED}"
    if not (out / "S.csv").exists():
        tmp = out.with_suffix(".tmp")
        print(f"simulating a day of {points} charge points into {out} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "simulator", "batch", "--points", str(points), "--seed", str(SEED),
                        "--activations", "30", "--out", str(tmp)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        tmp.rename(out)
    return out


# --- child side -------------------------------------------------------------------------------------------

def naive_loop(states, acts, grid_s: float = 60.0) -> dict:
    """The per-session pandas loop (see the module docstring)."""
    import numpy as np
    import pandas as pd

    secs = (states["timestamp"] - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(seconds=1)
    states = states.assign(t=secs.astype(float))
    t0 = np.floor(states["t"].min() / grid_s) * grid_s
    grid = np.arange(t0, states["t"].max() + 2 * grid_s, grid_s)
    power = np.zeros(len(grid) - 1)
    ts = ((acts["t_signal"] - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(float)
    tc = ((acts["t_clear"] - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(float)
    delivered = np.zeros(len(acts))
    for _, g in states.groupby("session_id", sort=False):
        g = g.sort_values("t").drop_duplicates("t", keep="last")
        t, e = g["t"].to_numpy(), g["kwh"].cummax().to_numpy()
        if len(t) < 2:
            continue
        energy = np.interp(grid, t, e)
        power += np.diff(energy) * 3600 / grid_s
        delivered += np.interp(tc, t, e) - np.interp(ts, t, e)
    baseline = np.zeros(len(acts))
    for k in range(len(acts)):
        before = power[(grid[:-1] >= ts[k] - 120) & (grid[:-1] < ts[k])]
        after = power[(grid[:-1] >= tc[k] + 120) & (grid[:-1] < tc[k] + 720)]
        p_s, p_c = (before.mean() if len(before) else 0.0), (after.mean() if len(after) else 0.0)
        baseline[k] = (p_s + p_c) * (tc[k] - ts[k]) / 3600 / 2
    return {"shed_kwh": float((baseline - delivered).sum())}


def child(mode: str, folder: Path) -> dict:
    """One measurement in this (fresh) process; prints a JSON line."""
    import tempfile

    if os.environ.get(ROOT_VARIABLE):
        sys.path.insert(0, os.environ[ROOT_VARIABLE])

    from settlement.core import settle_frames
    try:
        from settlement.io import files
        from settlement.outputs import exports
    except ImportError:  # a --root checkout from before settlement/io and settlement/outputs
        from settlement import exports, files

    out: dict = {}
    t0 = time.perf_counter()
    if mode == "database":
        import django

        django.setup()
        from settlement.io import db as loaders

        acts = loaders.activations_frame(*_period())
        margin = 900
        states = loaders.states_frame(acts["t_signal"].min() - _td(margin), acts["t_clear"].max() + _td(margin))
    else:
        try:  # as services.settle_files does first (a --root checkout from before it has no such step)
            from settlement.outputs.drawing import start_fork_server

            start_fork_server(exports.DEFAULT_CHART_PROCESSES)
        except ImportError:
            pass
        states, acts = files.read_states(folder / "S.csv"), files.read_activations(folder / "A.csv")
    out["load_s"] = time.perf_counter() - t0
    out["states"] = len(states)
    t1 = time.perf_counter()
    if mode == "loop":
        naive_loop(states, acts)
    else:
        result = settle_frames(states, acts)
        out["compute_s"] = time.perf_counter() - t1
        out["activations"] = len(result.activations)
        if mode == "files":
            t2 = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                exports.write_outputs(result, Path(tmp) / "out")
            out["write_s"] = time.perf_counter() - t2
    out.setdefault("compute_s", time.perf_counter() - t1)
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _period():
    from datetime import UTC, datetime

    return datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def _td(seconds: int):
    from datetime import timedelta

    return timedelta(seconds=seconds)


# --- parent side ------------------------------------------------------------------------------------------

def run_child(mode: str, folder: Path, env: dict | None = None, root: Path | None = None) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = dict(env or os.environ)
    if root is not None:
        env[ROOT_VARIABLE] = str(root)  # the child imports that checkout's settlement (see the module doc)
    done = subprocess.run([sys.executable, __file__, "--child", mode, str(folder)], cwd=root or ROOT, env=env,
                          capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"{mode} child failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


LOAD_DB = """
import pandas as pd, io
from django.db import connection
from flexibility.models import Activation, Brp, Signal
from ocpi.models import CURRENT_MEASURED, OcpiParty, Session
states = pd.read_csv("{folder}/S.csv")
acts = pd.read_csv("{folder}/A.csv", parse_dates=["t_signal", "t_clear"])
party = OcpiParty.objects.create(name="bench", token_ours_hash="x" * 64, status="REGISTERED",
                                 country_code="NL", party_id="BEN")
first = states.groupby("session_id", sort=False).agg(evse_uid=("evse_uid", "first"), start=("timestamp", "min"))
Session.objects.bulk_create([Session(party=party, country_code="NL", ocpi_party_id="BEN", session_id=sid,
    location_id="L", evse_uid=row.evse_uid, connector_id="1", status="ACTIVE", start_date_time=row.start,
    kwh=0.0, last_updated=row.start) for sid, row in first.iterrows()], batch_size=5000)
ids = dict(Session.objects.values_list("session_id", "pk"))
frame = pd.DataFrame({{"session_id": states["session_id"].map(ids), "timestamp": states["timestamp"],
    "kwh": states["kwh"], "l1": states["current_l1_a"], "l2": states["current_l2_a"], "l3": states["current_l3_a"],
    "status": "ACTIVE", "received_at": states["timestamp"], "current_source": CURRENT_MEASURED}}).drop_duplicates(
    ["session_id", "timestamp"])
buf = io.StringIO()
frame.to_csv(buf, index=False, header=False)
buf.seek(0)
with connection.cursor() as cur:
    cur.copy_expert("COPY ocpi_client_sessionstate (session_id, timestamp, kwh, current_l1_a, current_l2_a, "
                    "current_l3_a, status, received_at, current_source) FROM STDIN WITH CSV", buf)
brp = Brp.objects.create(name="bench", token_hash="y" * 64, token_prefix="y")
for row in acts.itertuples():
    sig = Signal.objects.create(brp=brp, external_id=str(row.activation_id), direction="reduce_consumption",
                                status="relayed")
    Activation.objects.create(signal=sig, relayed_at=row.t_signal, ends_at=row.t_clear, status="restored",
                              restored_at=row.t_clear)
print(len(frame))
"""


def main() -> None:
    p = bench_args(__doc__, default_repeat=3)
    p.add_argument("--points", default="1000,4000,16000", help="comma-separated charge point counts")
    p.add_argument("--doors", default="files,database,loop", help="which of files, database, loop to measure")
    p.add_argument("--root", type=Path, help="run the children on this checkout's code (before/after rows)")
    p.add_argument("--child", nargs=2, metavar=("MODE", "FOLDER"), help=argparse_hidden())
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]))))
        return
    sizes = [200, 500] if args.quick else [int(x) for x in args.points.split(",")]
    doors = [d.strip() for d in args.doors.split(",") if d.strip()]
    root = args.root.resolve() if args.root else None
    rows: list[Row] = []
    for points in sizes:
        folder = dataset(points)
        env, stored = None, ""
        if "database" in doors:
            env = production_env(fresh_database(DB))
            manage(env, "migrate", "--noinput", "-v", "0")
            stored = manage(env, "shell", "-c", LOAD_DB.format(folder=folder)).strip().splitlines()[-1]
        res: dict[str, list[dict]] = {door: [] for door in doors}
        load_before = load_average()
        for _ in range(args.repeat):  # interleaved, so the sides of the ratio see the same machine load
            for door in doors:
                res[door].append(run_child(door, folder, env if door == "database" else None, root))
        load = f"load average (1/5/15 min) {load_before} before, {load_average()} after"
        states = next(iter(res.values()))[0]["states"]
        case = f"{points // 1000 if points >= 1000 else points / 1000:g}k CP, {states:,} states"
        if root is not None:
            case += f" [{root.name}]"
        rows += _rows(case, res, points >= 16_000, stored, load)
        print(f"{case}: done", flush=True)
    finish(rows, args.json)


def _rows(case: str, res: dict[str, list[dict]], big: bool, stored: str, load: str) -> list[Row]:
    ten = dict(target="<= 10 s", ok=lambda m: m <= 10) if big else {}
    two = dict(target="<= 2048 MB", ok=lambda m: m <= 2048) if big else {}
    rows = []
    if f := res.get("files"):
        rows += [
            Row.of(BENCH, case, "files: compute (settle_frames)", "s", [r["compute_s"] for r in f], **ten),
            Row.of(BENCH, case, "files: read + compute + write", "s",
                   [r["load_s"] + r["compute_s"] + r["write_s"] for r in f], **ten, note=load),
            Row.of(BENCH, case, "files: CPU of the child (user + system)", "s", [r["cpu_s"] for r in f],
                   note="includes interpreter start and imports; not the chart-drawing processes"),
            Row.of(BENCH, case, "files: read (S.csv, A.csv)", "s", [r["load_s"] for r in f]),
            Row.of(BENCH, case, "files: write (CSV, XLSX, PNG)", "s", [r["write_s"] for r in f]),
            Row.of(BENCH, case, "files: peak RSS", "MB", [r["rss_mb"] for r in f], **two),
        ]
    if d := res.get("database"):
        rows += [
            Row.of(BENCH, case, "database: compute (settle_frames)", "s", [r["compute_s"] for r in d], **ten),
            Row.of(BENCH, case, "database: load (loaders)", "s", [r["load_s"] for r in d],
                   note=f"{stored} SessionState rows in PostgreSQL"),
            Row.of(BENCH, case, "database: peak RSS", "MB", [r["rss_mb"] for r in d], **two),
        ]
    if lo := res.get("loop"):
        rows.append(Row.of(BENCH, case, "per-session pandas loop", "s", [r["compute_s"] for r in lo]))
        if f:
            rows.append(Row.of(BENCH, case, "ratio loop / core compute", "x",
                               [a["compute_s"] / b["compute_s"] for a, b in zip(lo, f, strict=True)]))
    return rows


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    if "--child" in sys.argv and "database" in sys.argv:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smatch.settings")
    main()
