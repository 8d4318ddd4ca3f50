"""Backtest of the flexibility forecast (`flexibility/forecast.py`) on simulated weeks.

    python bench/forecast_backtest.py [--points 100] [--weeks 6] [--seed 1] [--quick] [--json OUT]
                                      [--doc docs/forecast.md]

The simulator's batch mode (`simulator.batch.run`, the same fleet generation as bench/simulator_day.py,
no activations) runs `--weeks` weeks. Its ground truth gives the erasable power at every ISP start:
each charging session's true per-phase current above 8 A x phases x 230 V. From the fifth week on,
a forecast is made at every hour (an ISP boundary) with only the four weeks before it as history and
the erasable power at that instant as "the state now"; it is compared with the truth at horizons of
15 min, 1 h, 4 h and 24 h (day-ahead). Reported per horizon: mean absolute error of the P50 (kW and
as a share of the mean truth), bias, and how often the truth falls inside [P10, P90] (target about
80 %); the profile alone (no correction by the state now) and persistence (the value now) for scale.

With --doc, the table replaces the part of docs/forecast.md between the BACKTEST markers.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Row, bench_args, finish
from flexibility import forecast
from simulator import batch
from simulator.config import DA_PER_A, SimConfig

NAME = "forecast_backtest"
ISP_S = 900
HORIZONS = {"15 min": 1, "1 h": 4, "4 h": 16, "day-ahead (24 h)": 96}
HISTORY_ISPS = 28 * 96
START, END = "<!-- BACKTEST: written by bench/forecast_backtest.py -->", "<!-- /BACKTEST -->"


def true_erasable(result: batch.BatchResult, config: SimConfig) -> pd.Series:
    """Erasable power (kW) at every ISP start of the run, from the simulator's truth."""
    truth, fleet = result.truth, result.fleet
    n_isp = config.duration_s // ISP_S
    phases = np.zeros((n_isp, config.n_points))
    pop = fleet.pop
    ends = np.where(fleet.session_end_s >= 0, fleet.session_end_s, config.duration_s)
    for point, ph, start, end in zip(pop.point, pop.phases, pop.started_s, ends, strict=True):
        first, last = -(-int(start) // ISP_S), (int(end) - 1) // ISP_S
        if last >= first:
            phases[first:last + 1, point] = ph
    power = np.zeros(config.n_points)
    out = np.zeros(n_isp)
    lo = 0
    t_s, point, delta = truth.t_s, truth.point, truth.delta_dap
    for k in range(n_isp):
        hi = int(np.searchsorted(t_s, k * ISP_S, side="right"))
        np.add.at(power, point[lo:hi], delta[lo:hi])
        lo = hi
        ph = phases[k]
        on = ph > 0
        amps = power[on] / (DA_PER_A * ph[on])  # deci-ampere-phases -> per-phase amperes
        out[k] = float(forecast.shed_kw(amps, ph[on]).sum())
    index = pd.date_range(config.start, periods=n_isp, freq="15min")
    return pd.Series(out, index=index)


def backtest(series: pd.Series) -> pd.DataFrame:
    """One row per (origin, horizon): truth, the forecast band, the profile alone and persistence."""
    rows = []
    values = series.to_numpy()
    for k in range(HISTORY_ISPS, len(series), 4):  # an origin every hour
        now = series.index[k].to_pydatetime()
        prof = forecast.profile(series.iloc[k - HISTORY_ISPS:k])
        targets = [k + h for h in HORIZONS.values() if k + h < len(series)]
        if not targets:
            continue
        isps = [series.index[t].to_pydatetime() for t in targets]
        corrected = forecast.predict(prof, isps, now, float(values[k]))
        alone = forecast.predict(prof, isps, now, float("nan"))
        for name, t, c, a in zip(HORIZONS, targets, corrected.itertuples(), alone.itertuples(),
                                      strict=False):
            rows.append({"horizon": name, "truth": values[t], "p10": c.p10, "p50": c.p50, "p90": c.p90,
                         "profile_p50": a.p50, "persistence": values[k], "hour": now.hour})
    return pd.DataFrame(rows)


def summarise(bt: pd.DataFrame) -> pd.DataFrame:
    out = []
    for name in HORIZONS:
        g = bt[bt["horizon"] == name]
        mean = g["truth"].mean()
        out.append({
            "horizon": name, "n": len(g), "mean truth kW": mean,
            "P50 MAE kW": (g["p50"] - g["truth"]).abs().mean(),
            "P50 MAE %": 100 * (g["p50"] - g["truth"]).abs().mean() / mean,
            "P50 bias kW": (g["p50"] - g["truth"]).mean(),
            "band coverage %": 100 * ((g["truth"] >= g["p10"]) & (g["truth"] <= g["p90"])).mean(),
            "profile-only MAE %": 100 * (g["profile_p50"] - g["truth"]).abs().mean() / mean,
            "persistence MAE %": 100 * (g["persistence"] - g["truth"]).abs().mean() / mean,
        })
    return pd.DataFrame(out)


def by_hour(bt: pd.DataFrame, horizon: str = "4 h") -> pd.DataFrame:
    """Where it is weak: coverage and error by hour of the origin, one horizon."""
    g = bt[bt["horizon"] == horizon].assign(inside=lambda d: (d["truth"] >= d["p10"]) & (d["truth"] <= d["p90"]),
                                            err=lambda d: (d["p50"] - d["truth"]).abs())
    return g.groupby(g["hour"] // 4 * 4).agg(truth=("truth", "mean"), mae=("err", "mean"), coverage=("inside", "mean"))


def markdown(table: pd.DataFrame, hours: pd.DataFrame, command: str, config: SimConfig, weeks: int,
             wall_s: float) -> str:
    head = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns) + "\n"
    body = "".join("| " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row) + " |\n"
                   for row in table.itertuples(index=False))
    hour_rows = "".join(f"| {int(h):02d}-{int(h) + 4:02d} UTC | {r.truth:.1f} | {r.mae:.1f} | "
                        f"{100 * r.coverage:.0f} % |\n" for h, r in hours.iterrows())
    return (f"Command: `{command}` ({config.n_points} charge points, {weeks} weeks from "
            f"{config.start:%Y-%m-%d}, seed {config.seed}; forecasts from week 5 on, one per hour; "
            f"{wall_s:.0f} s on a shared 2-core box).\n\n" + head + body
            + "\nBy hour of the origin (4 h horizon): mean truth kW, P50 MAE kW, band coverage.\n\n"
            + "| origin | truth kW | MAE kW | coverage |\n|---|---|---|---|\n" + hour_rows)


def main() -> None:
    p = bench_args(__doc__, default_repeat=1)
    p.add_argument("--points", type=int, default=100)
    p.add_argument("--weeks", type=int, default=6)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--doc", type=Path)
    args = p.parse_args()
    points, weeks = (40, 5) if args.quick else (args.points, args.weeks)
    config = SimConfig(points=points, seed=args.seed, duration_s=weeks * 7 * 86_400)
    t0 = time.perf_counter()
    series = true_erasable(batch.run(config), config)
    bt = backtest(series)
    wall = time.perf_counter() - t0
    table = summarise(bt)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    hours = by_hour(bt)
    print(hours.to_string(float_format=lambda v: f"{v:.2f}"))
    if args.doc:
        command = "python bench/forecast_backtest.py " + " ".join(sys.argv[1:])
        text = args.doc.read_text()
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        args.doc.write_text(before + START + "\n" + markdown(table, hours, command, config, weeks, wall) + END + after)
    rows = [Row.of(NAME, f"{points} points, {weeks} weeks, {name}", metric, "%", [float(r[col])],
                   target=target, ok=ok)
            for r, name in zip(table.to_dict("records"), HORIZONS, strict=True)
            for metric, col, target, ok in (("P50 MAE", "P50 MAE %", None, None),
                                            ("band coverage", "band coverage %", "~80 %",
                                             lambda v: 70 <= v <= 90))]
    finish(rows, args.json)


if __name__ == "__main__":
    main()
