"""Batch-mode simulator over a day: wall time, peak RSS and counts.

    python bench/simulator_day.py [--points 16000] [--activations 20] [--seed 1] [--quick] [--repeat N] [--json OUT]

Peak RSS is the process's high-water mark (ru_maxrss) after the repetitions: the most one day needs.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Row, bench_args, finish
from simulator import batch
from simulator.config import SimConfig


def main() -> None:
    p = bench_args(__doc__, default_repeat=1)
    p.add_argument("--points", type=int, default=16_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--activations", type=int, default=20)
    p.add_argument("--duration-s", type=int, default=86_400)
    args = p.parse_args()
    points = 1000 if args.quick else args.points
    cfg = SimConfig(points=points, seed=args.seed, duration_s=args.duration_s)
    acts = batch.random_activations(cfg, args.activations) if args.activations else []
    walls = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = batch.run(cfg, acts)
        walls.append(time.perf_counter() - t0)
    truth = result.truth
    energy = truth.energy_kwh(0, cfg.duration_s)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"points {cfg.n_points}, stations {cfg.n_stations}, simulated {cfg.duration_s} s, seed {cfg.seed}")
    print(f"truth {truth.n_changes} change-points = {truth.nbytes / 1e6:.1f} MB; "
          f"states frame {result.states.memory_usage(deep=True).sum() / 1e6:.0f} MB")
    print(f"sessions {len(result.sessions)}, states {len(result.states)}, activations {len(acts)}, "
          f"true energy {energy / 1000:.1f} MWh")
    case = f"{cfg.n_points:,} points, {cfg.duration_s // 3600} h, {len(acts)} activations"
    note = f"{len(result.sessions):,} sessions, {len(result.states):,} states"
    finish([
        Row.of("simulator_day", case, "simulate (batch, 1-s physics + truth)", "s", walls, note=note),
        Row.of("simulator_day", case, "peak memory (RSS)", "MB", [rss_mb]),
    ], args.json)

if __name__ == "__main__":
    main()
