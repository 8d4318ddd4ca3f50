"""Batch-mode simulator over a day: wall time, peak RSS and counts.

    python bench/simulator_day.py --points 16000 [--activations 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator import batch
from simulator.config import SimConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--points", type=int, default=16_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--activations", type=int, default=20)
    p.add_argument("--duration-s", type=int, default=86_400)
    args = p.parse_args()
    cfg = SimConfig(points=args.points, seed=args.seed, duration_s=args.duration_s)
    acts = batch.random_activations(cfg, args.activations) if args.activations else []
    t0 = time.perf_counter()
    result = batch.run(cfg, acts)
    t_sim = time.perf_counter() - t0
    truth = result.truth
    t1 = time.perf_counter()
    meters = truth.meter_energy(0, cfg.duration_s)
    t_meter = time.perf_counter() - t1
    energy = truth.energy_kwh(0, cfg.duration_s)
    peak_kw = truth.power_kw(0, cfg.duration_s).max()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"points {cfg.n_points}, stations {cfg.n_stations}, simulated {cfg.duration_s} s, seed {cfg.seed}")
    print(f"wall time: simulate {t_sim:.1f} s, meters {t_meter:.1f} s")
    print(f"peak RSS: {rss_mb:.0f} MB; truth {truth.n_changes} change-points = {truth.nbytes / 1e6:.1f} MB; "
          f"states frame {result.states.memory_usage(deep=True).sum() / 1e6:.0f} MB")
    print(f"sessions {len(result.sessions)}, states {len(result.states)}, activations {len(acts)}, "
          f"sessions capped {int(result.activations['sessions_capped_true'].sum()) if acts else 0}")
    print(f"true energy {energy / 1000:.1f} MWh, peak power {peak_kw / 1000:.2f} MW, "
          f"meter energy {meters.energy_kwh.sum() / 1000:.1f} MWh (incl. idle)")


if __name__ == "__main__":
    main()
