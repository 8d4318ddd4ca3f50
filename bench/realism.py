"""The product against the simulator's `standard` profile: the figures of issue #10's "Done means".

    python bench/realism.py [--seeds 1,2,3] [--state-interval-s 5] [--quick] [--json OUT] [--doc docs/realism.md]

Each seed is one end-to-end run of `tests/integration/test_realism.py::test_standard_figures`
(real PostgreSQL, Redis, a Celery worker, the simulator over HTTP, the `standard` profile: `kwh`
and ENERGY/TIME periods only; 240 charge points, 5 % of EVSEs answer ACCEPTED and ignore the limit;
three activations of 30 s so the N-of-M rule can flag). The test writes its figures, judged by the
simulator's truth, to a JSON file this script reads:

- capped share: sessions truly above 8 A per phase at the signal that the product capped (>= 98 %);
- shed error: |expected - true| / true, the expected shed of the caps sent vs the counterfactual
  minus the actual fleet power over the window, summed over the activations (<= 15 %), with the
  signed range per activation;
- verdicts right: caps judged responded / did not respond as the truth says (>= 95 %);
- flag precision and recall over the EVSEs that truly ignored a limit at least N times (0.95 / 0.9).

Services: BENCH_REALISM_DB (PostgreSQL URL; pytest-django creates test_<name>) and
BENCH_REALISM_BROKER (Redis URL), defaults below.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Row, bench_args, finish, fmt

NAME = "realism"
DB = os.environ.get("BENCH_REALISM_DB", "postgres://postgres@127.0.0.1:5432/bench_realism")
BROKER = os.environ.get("BENCH_REALISM_BROKER", "redis://127.0.0.1:6379/12")
TEST = "tests/integration/test_realism.py::test_standard_figures"
# (figure key, metric, unit, target text, met?)
METRICS = [
    ("capped_share", "sessions above 8 A capped", "%", ">= 98 %", lambda v: v >= 98.0),
    ("shed_error", "expected vs true shed error", "%", "<= 15 %", lambda v: v <= 15.0),
    ("verdicts_right", "delivery verdicts right", "%", ">= 95 %", lambda v: v >= 95.0),
    ("precision", "flagged EVSEs precision", "", ">= 0.95", lambda v: v >= 0.95),
    ("recall", "flagged EVSEs recall", "", ">= 0.9", lambda v: v >= 0.9),
]
PERCENT = {"capped_share", "shed_error", "verdicts_right"}
READING = "<!-- READING: hand-written, kept by bench/realism.py -->"


def run_seed(seed: int, state_interval_s: int) -> dict:
    """One end-to-end run; its figures (the test writes them before asserting the targets)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        env = {**os.environ, "DATABASE_URL": DB, "CELERY_BROKER_URL": BROKER, "CI": "true",
               "REALISM_SEED": str(seed), "REALISM_FIGURES": str(out),
               "REALISM_STATE_INTERVAL_S": str(state_interval_s), "DB_CONN_MAX_AGE": "0"}
        proc = subprocess.run([sys.executable, "-m", "pytest", TEST, "-q", "-p", "no:cacheprovider"], cwd=ROOT,
                              env=env, capture_output=True, text=True, check=False)
        if not out.exists():
            raise RuntimeError(f"seed {seed}: no figures\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
        return json.loads(out.read_text())


def rows_of(found: list[dict]) -> list[Row]:
    seeds = ",".join(str(f["seed"]) for f in found)
    rows = []
    for key, metric, unit, target, ok in METRICS:
        values = [f[key] * (100 if key in PERCENT else 1) for f in found]
        rows.append(Row.of(NAME, "standard profile", metric, unit, values, target=target, ok=ok,
                           note=f"seeds {seeds}"))
    return rows


INTRO = """# Realism: the product against the simulator's `standard` profile

Written by `bench/realism.py` (issue #10, "Done means"); the coordinator folds it into docs/accuracy.md.
Each seed is one end-to-end run of `tests/integration/test_realism.py::test_standard_figures`: real
PostgreSQL, Redis, Celery worker and the simulator over HTTP, sending only `kwh` and ENERGY/TIME
charging periods (states every 5 s), 240 charge points, 5 % of EVSEs answering ACCEPTED and ignoring
the limit, three activations of 30 s. Everything is judged by the simulator's truth:

- capped: sessions truly above 8 A per phase at the signal that were capped (target >= 98 %);
- shed error: |expected - true| / true over the activations, where expected = the product's expected
  shed of the caps it sent and true = counterfactual minus actual fleet power, mean over the window
  (target <= 15 %); in brackets the signed error of single activations;
- preview range: the low-high expected shed the product's preview showed just before each signal
  (summed; the activation itself stores only the low end), and in how many activations the truth fell
  inside it;
- verdicts: caps judged responded / did not respond as the truth says (target >= 95 %), no-data
  verdicts apart;
- flags: precision over the flagged EVSEs, recall over the EVSEs that truly ignored a limit in at
  least N (= 2) judged caps (targets 0.95 and 0.9).

"""


def doc(found: list[dict], command: str) -> str:
    head = ("| seed | states every | caps / above 8 A | capped | expected kW | preview range kW (truth inside) "
            "| true kW | "
            "shed error (per activation) | "
            "verdicts right (n; no data) | EVSEs ignoring / flaggable / flagged | precision | recall |")
    lines = [INTRO, head, "|" + "---|" * 12]
    for f in found:
        low, high = (100 * e for e in f["shed_error_range"])
        lines.append(
            f"| {f['seed']} | {f['state_interval_s']} s | {f['capped']} / {f['above']} | "
            f"{100 * f['capped_share']:.1f} % | "
            f"{fmt(f['expected_kw'])} | {fmt(f['preview_low_kw'])}-{fmt(f['preview_high_kw'])} "
            f"({f['truth_in_preview_range']} of {f['activations']}) | {fmt(f['true_shed_kw'])} | "
            f"{100 * f['shed_error']:.1f} % "
            f"({low:+.0f} % to {high:+.0f} %) | {100 * f['verdicts_right']:.1f} % ({f['verdicts']}; {f['no_data']}) | "
            f"{f['evses_ignoring']} / {f['evses_flaggable']} / {f['flagged']} | {f['precision']:.2f} | "
            f"{f['recall']:.2f} |")
    return "\n".join(lines) + f"\n\nCommand: `{command}`\n"


def main() -> None:
    p = bench_args(__doc__, default_repeat=1)
    p.add_argument("--seeds", default="1,2,3", help="simulator seeds, one end-to-end run each")
    p.add_argument("--state-interval-s", type=int, default=5, help="the simulator's state interval (s)")
    p.add_argument("--doc", type=Path, help="write the per-seed table here (markdown)")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")][:1 if args.quick else None]
    found = []
    for seed in seeds:
        try:
            found.append(run_seed(seed, args.state_interval_s))
        except RuntimeError as exc:  # a run that produced no figures is reported, the others still count
            print(exc, file=sys.stderr, flush=True)
            continue
        print(json.dumps(found[-1]), flush=True)
    if not found:
        sys.exit("no seed produced figures")
    finish(rows_of(found), args.json)
    table = doc(found, "python bench/realism.py " + " ".join(sys.argv[1:]))
    print(table)
    if args.doc:
        # The hand-written reading below the marker is kept across reruns.
        old = args.doc.read_text() if args.doc.exists() else ""
        reading = old[old.index(READING):] if READING in old else f"{READING}\n(hand-written reading)\n"
        args.doc.write_text(table + "\n" + reading)


if __name__ == "__main__":
    main()
