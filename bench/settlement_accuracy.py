"""Settlement accuracy against the simulator's ground truth (issue 4); prints the tables of docs/accuracy.md.

    .venv/bin/python bench/settlement_accuracy.py [--points 1000] [--seed 1]

One simulated day, 2025-05-06 00:00-24:00 UTC, with 30 minutes of margin on both sides (so every ISP
of the day has states before and after it, as in production), one activation per hour from 01:00 to
23:00 UTC. The simulator runs twice with the same seed, with and without the
activations; true shed = the difference of the true energy over each activation. The states of the
run with activations are delivered three ways (clean; 5 % dropped at random; a 30-minute outage of
10 % of the charge points around the 17:00 UTC activation, their states simply missing) and settled
with the product's own core (`settle_frames`, the defaults of `manage.py settle`). The baselines are
also applied to the TRUE 1-minute power, which separates the baseline's own modelling error from
the reconstruction's.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from settlement.accuracy import (
    energy_errors,
    hourly_activations,
    isp_energy_kwh,
    markdown_table,
    per_second_to_bins,
    shed_errors,
)
from settlement.core import BASELINES, settle_frames
from settlement.core.edges import detect_edges, mean_power_kw
from settlement.core.settle import SettleParams
from simulator import batch
from simulator.config import Faults, Outage, SimConfig

BASELINE_NAMES = ("trapezoid", "flat")
DAY = datetime(2025, 5, 6, tzinfo=UTC)
DAY_S = 86_400
MARGIN_S = 1_800
OUTAGE_HOUR = 17  # evening peak (19:00 CEST)


def scenarios(result: batch.BatchResult, acts: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, str]]:
    cfg = result.fleet.config
    hit = acts[acts["t_signal"].dt.hour == OUTAGE_HOUR].iloc[0]
    start_s = int((hit["t_signal"] - pd.Timestamp(cfg.start)).total_seconds()) - 600
    outage = Outage(0, cfg.n_points // 10, start_s, start_s + 1800)
    return {
        "clean": (result.states, ""),
        "5 % states dropped": (batch.redeliver(result, Faults(drop_state_share=0.05)), ""),
        "outage 10 % x 30 min": (batch.redeliver(result, Faults(outages=(outage,))), str(hit["activation_id"])),
    }


def true_isp_kwh(result: batch.BatchResult) -> pd.Series:
    start = pd.Timestamp(result.fleet.config.start)
    bounds = range(MARGIN_S, MARGIN_S + DAY_S, 900)
    return pd.Series([result.truth.energy_kwh(b, b + 900) for b in bounds],
                     index=[start + pd.Timedelta(seconds=b) for b in bounds])


def rebound_kwh(result: batch.BatchResult, acts: pd.DataFrame, after_s: int = 600) -> np.ndarray:
    """True energy with minus without activations over the `after_s` after each clear (catch-up charging)."""
    out = []
    for act in acts.itertuples():
        a = result.truth.seconds(act.t_clear.to_pydatetime())
        out.append(result.truth.energy_kwh(a, a + after_s) - result.baseline.energy_kwh(a, a + after_s))
    return np.array(out)


def thin_list(activations: pd.DataFrame) -> str:
    """'17 (flagged sessions); 18 (low coverage)': which activations are thin, and why, by kind."""
    out = []
    for act in activations[activations["data_quality"] == "thin"].itertuples():
        kinds = []
        for part in filter(None, (r.strip() for r in str(act.dq_reasons).split(";"))):
            kind = "low coverage" if part.startswith("only") else "flagged sessions" if "data issues" in part else part
            if kind not in kinds:
                kinds.append(kind)
        out.append(f"{act.Index} ({', '.join(kinds)})")
    return "; ".join(out) or "-"


def shed_on_true_power(result: batch.BatchResult, acts: pd.DataFrame, name: str,
                       oracle_clear: bool = False) -> np.ndarray:
    """The baseline applied to the true power, minus the true delivered energy: no reconstruction in it.

    `oracle_clear`: P(t_clear) replaced by the counterfactual's mean power over the minute after t_clear
    (a diagnostic: what the trapezoid would give if its post-clear estimate were right).
    """
    cfg = result.fleet.config
    power = per_second_to_bins(result.truth.power_kw(0, cfg.duration_s), pd.Timestamp(cfg.start))
    without = per_second_to_bins(result.baseline.power_kw(0, cfg.duration_s), pd.Timestamp(cfg.start))
    out = []
    for act in acts.itertuples():
        edges = detect_edges(power, act.t_signal, act.t_clear)
        b = BASELINES[name](power, act.t_signal, act.t_clear, edges=edges)
        if oracle_clear:
            b = replace(b, p_clear_kw=mean_power_kw(without, act.t_clear, act.t_clear + pd.Timedelta(minutes=1), 60))
        out.append(b.energy_kwh())
    return np.array(out) - acts["energy_true_kwh"].to_numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-notch", action="store_true", help="reconstruct without the activation windows")
    args = p.parse_args()
    t0 = time.perf_counter()
    cfg = SimConfig(points=args.points, seed=args.seed, start=DAY - timedelta(seconds=MARGIN_S),
                    duration_s=DAY_S + 2 * MARGIN_S)
    windows = hourly_activations(DAY, range(1, 24), args.seed)
    result = batch.run(cfg, windows, counterfactual=True)
    acts = result.activations.copy()
    acts["activation_id"] = acts["activation_id"].astype(str)
    true_shed = acts["shed_true_kwh"].to_numpy()
    true_isp = true_isp_kwh(result)
    # A flat price so that "no price" does not mark every activation thin; value is not assessed here.
    prices = pd.Series(100.0, index=pd.date_range(cfg.start, periods=cfg.duration_s // 900, freq="15min"))
    rebound = rebound_kwh(result, acts)
    t_sim = time.perf_counter() - t0

    energy_rows, shed_rows, per_act = [], [], {}
    baseline_only = {name: shed_on_true_power(result, acts, name) for name in BASELINE_NAMES}
    for name in BASELINE_NAMES:
        e = shed_errors(true_shed, baseline_only[name])
        shed_rows.append({"scenario": "true power (baseline model only)", "baseline": name, **e.__dict__,
                          "rec_pct": 0.0, "rec_mae_kwh": 0.0, "thin": "-"})
    oracle = shed_errors(true_shed, shed_on_true_power(result, acts, "trapezoid", oracle_clear=True))
    shed_rows.append({"scenario": "true power, counterfactual P(t_clear) (diagnostic)", "baseline": "trapezoid",
                      **oracle.__dict__, "rec_pct": 0.0, "rec_mae_kwh": 0.0, "thin": "-"})
    for label, (states, hit) in scenarios(result, acts).items():
        settled = settle_frames(states, acts[["activation_id", "t_signal", "t_clear"]], prices, baseline="all",
                                params=SettleParams(notch=not args.no_notch))
        rec = settled.reconstruction
        isp = isp_energy_kwh(pd.Series(rec.bin_energy_kwh, index=rec.index))
        e = energy_errors(true_isp, isp)
        a = settled.activations.set_index("activation_id").loc[acts["activation_id"]]
        delivered = shed_errors(acts["energy_true_kwh"], a["delivered_kwh"])
        thin = int((a["data_quality"] == "thin").sum())
        energy_rows.append({"scenario": label, "states": len(states), **e.__dict__,
                            "worst_at": e.worst_at.strftime("%H:%M"), "delivered_pct": delivered.aggregate_pct,
                            "delivered_mae_kwh": delivered.mae_kwh, "thin": f"{thin}/{len(a)}",
                            "why": thin_list(a)})
        for k, name in enumerate(BASELINE_NAMES):
            est = a["shed_kwh" if k == 0 else f"{name}_shed_kwh"].to_numpy(float)
            s = shed_errors(true_shed, est)
            rec_only = shed_errors(baseline_only[name], est)
            shed_rows.append({"scenario": label, "baseline": name, **s.__dict__, "rec_pct": rec_only.aggregate_pct,
                              "rec_mae_kwh": rec_only.mae_kwh, "thin": f"{thin}/{len(a)}"})
            per_act[(label, name)] = est
        if hit:
            i = int(np.flatnonzero(acts["activation_id"] == hit)[0])
            per_act[("outage", "row")] = (hit, i, a.iloc[i])
    t_all = time.perf_counter() - t0

    print(f"# settlement accuracy: {cfg.n_points} charge points, seed {cfg.seed}, {len(acts)} activations, "
          f"{len(result.sessions)} sessions; day 00:00-24:00 UTC of {DAY.date()} (simulated with 30 min margins); "
          f"notch shape {'off' if args.no_notch else 'on'}\n")
    print("## Reconstructed energy per ISP vs truth (96 ISPs of the day) and delivered energy during activations\n")
    print(markdown_table(energy_rows, [
        ("scenario", "scenario", ""), ("states", "states", "d"), ("max_abs_pct", "ISP max abs %", ".3f"),
        ("mean_abs_pct", "ISP mean abs %", ".3f"), ("total_pct", "day total %", "+.3f"),
        ("worst_at", "worst ISP", ""), ("delivered_pct", "delivered agg. %", "+.2f"),
        ("delivered_mae_kwh", "delivered MAE kWh", ".2f"), ("thin", "thin", ""), ("why", "thin: id (why)", "")]))
    print("\n## Shed energy per activation vs truth (true shed = energy without - with activations)\n")
    print(markdown_table(shed_rows, [
        ("scenario", "scenario", ""), ("baseline", "baseline", ""), ("true_total_kwh", "true kWh", ".0f"),
        ("est_total_kwh", "est. kWh", ".0f"), ("aggregate_pct", "aggregate %", "+.1f"),
        ("bias_kwh", "bias kWh", "+.2f"), ("mae_kwh", "MAE kWh", ".2f"), ("mae_pct", "MAE %", ".1f"),
        ("median_abs_pct", "median abs %", ".1f"), ("rec_pct", "rec. only agg. %", "+.1f"),
        ("rec_mae_kwh", "rec. only MAE kWh", ".2f"), ("thin", "thin", "")]))
    print("\n## Per activation, clean states (kWh)\n")
    rows = []
    for i, act in enumerate(acts.itertuples()):
        rows.append({"id": act.activation_id, "signal": act.t_signal.strftime("%H:%M:%S"),
                     "clear": act.t_clear.strftime("%H:%M"), "capped": act.sessions_capped_true,
                     "true": true_shed[i], "trap_true_power": baseline_only["trapezoid"][i],
                     "trap": per_act[("clean", "trapezoid")][i], "flat_true_power": baseline_only["flat"][i],
                     "flat": per_act[("clean", "flat")][i], "rebound": rebound[i]})
    print(markdown_table(rows, [
        ("id", "id", ""), ("signal", "signal", ""), ("clear", "clear", ""), ("capped", "capped", "d"),
        ("true", "true shed", ".1f"), ("trap_true_power", "trapezoid on true power", ".1f"),
        ("trap", "trapezoid", ".1f"), ("flat_true_power", "flat on true power", ".1f"), ("flat", "flat", ".1f"),
        ("rebound", "rebound 10 min after clear", ".1f")]))
    for name in BASELINE_NAMES:
        model_err = baseline_only[name] - true_shed
        r = np.corrcoef(model_err, rebound)[0, 1]
        print(f"\n{name} on true power: error vs rebound over activations: correlation {r:.2f}; "
              f"sum of errors {model_err.sum():+.1f} kWh, sum of rebounds {rebound.sum():.1f} kWh")
    hit, i, row = per_act[("outage", "row")]
    print(f"\n## The activation inside the outage (id {hit}, signal {acts['t_signal'].iloc[i]:%H:%M:%S})\n")
    print(f"true shed {true_shed[i]:.1f} kWh; clean: trapezoid {per_act[('clean', 'trapezoid')][i]:.1f}, "
          f"flat {per_act[('clean', 'flat')][i]:.1f}; outage: trapezoid "
          f"{per_act[('outage 10 % x 30 min', 'trapezoid')][i]:.1f}, flat "
          f"{per_act[('outage 10 % x 30 min', 'flat')][i]:.1f}; data_quality {row['data_quality']} "
          f"({row['dq_reasons']}); coverage {row['coverage_share']:.0%}")
    print(f"\nwall time: simulate x2 {t_sim:.0f} s, total {t_all:.0f} s")


if __name__ == "__main__":
    main()
