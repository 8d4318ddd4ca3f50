"""Driver impact, side by side: all-or-nothing vs target-kW at 50 % of the preview, one simulated day.

    python bench/driver_impact.py [--points 400] [--activations 20] [--seed 1] [--quick] [--doc docs/driver_impact.md]

One day of the simulator's batch mode (fleet generation as bench/simulator_day.py) gives every
session's true per-phase current and phases. The same signals (`batch.random_activations`, each
cleared at the next ISP boundary) are replayed twice through the product's own pure code:
`planning.plan_caps` (eligibility, the 30-min-in-4-h budget, with each mode's own earlier caps as
history) and, for target-kW, `selection.select` at TARGET_MARGIN 0.15 and the delivery tolerances
1.5 A / 0.5 kW (the defaults) with the target set to half of that moment's preview (its expected shed; phases are
known here). Shed per activation is the expected shed of the caps from the true current at the
signal (every EVSE obeys here): a plan figure, not a
measurement; the physics of the capped day is not re-simulated.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Row, bench_args, finish
from flexibility import planning, selection
from simulator import batch
from simulator.config import DA_PER_A, SimConfig

NAME = "driver_impact"
MARGIN = 0.15
MIN_SHED_KW, MIN_ABOVE_A = 0.5, 1.5  # settings.DELIVERY_TOLERANCE_KW, _A defaults
START, END = "<!-- IMPACT: written by bench/driver_impact.py -->", "<!-- /IMPACT -->"


def views_at(result: batch.BatchResult, config: SimConfig, t_s: int, past: dict) -> list[planning.SessionView]:
    fleet, pop = result.fleet, result.fleet.pop
    ends = np.where(fleet.session_end_s >= 0, fleet.session_end_s, config.duration_s)
    on = np.flatnonzero((pop.arrival_s <= t_s) & (t_s < ends))
    power_dap = np.zeros(config.n_points)
    mask = result.truth.t_s <= t_s
    np.add.at(power_dap, result.truth.point[mask], result.truth.delta_dap[mask])
    return [planning.SessionView(int(i), "ACTIVE", float(power_dap[pop.point[i]] / (DA_PER_A * pop.phases[i])),
                                 phases=int(pop.phases[i]), phases_source="reported", current_source="measured",
                                 past=tuple(past[int(i)]))
            for i in on]


def replay(result: batch.BatchResult, config: SimConfig, signals, target_share: float | None) -> dict:
    past: dict[int, list[planning.Interval]] = defaultdict(list)
    plugged = {int(i): config.start + timedelta(seconds=int(s)) for i, s in enumerate(result.fleet.pop.started_s)}
    per_activation = []
    for start, end in signals:
        t_s = int((start - config.start).total_seconds())
        plan = planning.plan_caps(views_at(result, config, t_s, past), start, end)
        target = None
        if target_share is not None and plan.caps:
            target = plan.expected_kw * target_share
            chosen = selection.select(selection.candidates_from_plan(plan, past, plugged, {}, start), target, MARGIN,
                                      MIN_SHED_KW, MIN_ABOVE_A)
            plan = selection.narrow(plan, chosen)
        for cap in plan.caps:
            past[cap.session_pk].append((cap.starts_at, cap.ends_at))
        per_activation.append((target, plan.expected_kw, len(plan.caps)))
    minutes = {pk: sum((e - s).total_seconds() for s, e in iv) / 60 for pk, iv in past.items()}
    n_sessions = len(result.fleet.pop)
    throttled = [m for m in minutes.values() if m > 0]
    targets = [(t, kw) for t, kw, _ in per_activation if t]
    return {
        "sessions throttled": len(throttled),
        "throttled min per throttled driver (mean)": float(np.mean(throttled)) if throttled else 0.0,
        "throttled min per throttled driver (max)": float(np.max(throttled)) if throttled else 0.0,
        "share never throttled %": 100 * (1 - len(throttled) / n_sessions),
        "caps sent": sum(n for _, _, n in per_activation),
        "shed per activation kW (mean)": float(np.mean([kw for _, kw, _ in per_activation])),
        "shed / target (mean)": float(np.mean([kw / t for t, kw in targets])) if targets else float("nan"),
        "shed / target (min)": float(np.min([kw / t for t, kw in targets])) if targets else float("nan"),
        "sessions": n_sessions,
    }


def cell(value: float | int) -> str:
    if isinstance(value, float):
        return "-" if np.isnan(value) else f"{value:.1f}"
    return str(value)


def main() -> None:
    p = bench_args(__doc__, default_repeat=1)
    p.add_argument("--points", type=int, default=400)
    p.add_argument("--activations", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--doc", type=Path)
    args = p.parse_args()
    points = 60 if args.quick else args.points
    config = SimConfig(points=points, seed=args.seed, duration_s=86_400)
    # The product's activation never lasts more than 15 minutes (a boundary under 3 min away is skipped).
    signals = [(a, min(b, a + planning.MAX_ACTIVATION)) for a, b in batch.random_activations(config, args.activations)]
    result = batch.run(config)
    modes = {"all-or-nothing": replay(result, config, signals, None),
             "target-kW, 50 % of preview": replay(result, config, signals, 0.5)}
    keys = list(next(iter(modes.values())))
    lines = ["| | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(cell(m[k]) for m in modes.values()) + " |")
    table = "\n".join(lines)
    print(table)
    if args.doc:
        command = "python bench/driver_impact.py " + " ".join(sys.argv[1:])
        text = args.doc.read_text()
        before, rest = text.split(START, 1)
        body = (f"Command: `{command}` ({config.n_points} charge points, one day from {config.start:%Y-%m-%d}, "
                f"seed {config.seed}, {len(signals)} signals).\n\n{table}\n")
        args.doc.write_text(before + START + "\n" + body + END + rest.split(END, 1)[1])
    finish([Row.of(NAME, f"{points} points, {len(signals)} signals, {mode}", "share never throttled", "%",
                   [m["share never throttled %"]]) for mode, m in modes.items()], args.json)


if __name__ == "__main__":
    main()
