"""Settlement accuracy against the simulator's ground truth; prints the tables of docs/accuracy.md.

    .venv/bin/python bench/settlement_accuracy.py --seeds 4,5,6   # held-out seeds (docs/accuracy.md), 4-7 min
    .venv/bin/python bench/settlement_accuracy.py --seeds 1,2,3   # the seeds the baselines were designed on

Per seed: one simulated day, 2025-05-06 00:00-24:00 UTC, with 30 minutes of margin on both sides (so
every ISP of the day has states before and after it, as in production), one activation per hour from
01:00 to 23:00 UTC. Per activation, a copy of the fleet continues from its signal without it (the
marginal truth): true shed = copy - run over the window, true rebound = run - copy per ISP after the
clear. The states of the run are delivered three ways (clean; 5 % dropped at random; a 30-minute
outage of 10 % of the charge points around the 17:00 UTC activation, their states simply missing),
each with its currents and kWh-only (currents stripped, as the `standard` realism profile sends
them), and settled with the product's own core (`settle_frames`, the defaults of `manage.py settle`,
every baseline, the default one first). Errors are pooled over the activations of all seeds given.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.settlement_accuracy_measures import (
    energy_errors,
    hourly_activations,
    isp_energy_kwh,
    markdown_table,
    per_second_to_bins,
    shed_errors,
)
from settlement.core import BASELINES, settle_frames
from settlement.core.baselines import DEFAULT_BASELINE
from settlement.core.counterfactual import session_counterfactual_kwh, session_window
from settlement.core.edges import detect_edges
from settlement.core.frames import CURRENT_COLUMNS
from settlement.core.settle import SettleParams
from simulator import batch
from simulator.config import DA_PER_A, Faults, Outage, SimConfig
from simulator.physics import Fleet

AGGREGATE_BASELINES = ("trapezoid", "flat", "trend")  # lines on the aggregate power: also tried on the true power
DAY = datetime(2025, 5, 6, tzinfo=UTC)
DAY_S = 86_400
MARGIN_S = 1_800
OUTAGE_HOUR = 17  # evening peak (19:00 CEST)
REBOUND_S = 3_600
NAMES = [DEFAULT_BASELINE, *[n for n in BASELINES if n != DEFAULT_BASELINE]]  # the default is the primary


def scenarios(result: batch.BatchResult, acts: pd.DataFrame) -> dict[str, pd.DataFrame]:
    cfg = result.fleet.config
    hit = acts[acts["t_signal"].dt.hour == OUTAGE_HOUR].iloc[0]
    start_s = int((hit["t_signal"] - pd.Timestamp(cfg.start)).total_seconds()) - 600
    outage = Outage(0, cfg.n_points // 10, start_s, start_s + 1800)
    return {
        "clean": result.states,
        "5 % dropped": batch.redeliver(result, Faults(drop_state_share=0.05)),
        "outage": batch.redeliver(result, Faults(outages=(outage,))),
    }


def kwh_only(states: pd.DataFrame) -> pd.DataFrame:
    """The same states as the `standard` profile sends them: cumulative kWh, no currents."""
    out = states.copy()
    out[CURRENT_COLUMNS] = np.nan
    return out


def day_prices(cfg: SimConfig, seed: int) -> pd.Series:
    """Seeded imbalance prices per ISP, ~N(80, 60) EUR/MWh: about one ISP in ten negative, so the value's
    sign and the rebound's price both matter."""
    rng = np.random.default_rng([seed, 7])
    n = cfg.duration_s // 900
    return pd.Series(rng.normal(80.0, 60.0, n).round(2), index=pd.date_range(cfg.start, periods=n, freq="15min"))


def true_isp_kwh(result: batch.BatchResult) -> pd.Series:
    start = pd.Timestamp(result.fleet.config.start)
    bounds = range(MARGIN_S, MARGIN_S + DAY_S, 900)
    return pd.Series([result.truth.energy_kwh(b, b + 900) for b in bounds],
                     index=[start + pd.Timedelta(seconds=b) for b in bounds])


def marginal_truth(cfg: SimConfig, acts: pd.DataFrame, prices: pd.Series, delay_s: int = 20) -> pd.DataFrame:
    """Per activation j, the truth of j alone on the fleet as it really was (activations 1..j-1 included).

    The run with every activation is simulated again (`batch.run` is deterministic, so it is the same
    run); at each signal a copy of the fleet continues WITHOUT activation j until the rebound window
    ends. True shed = copy - run over [t_signal, t_clear); true rebound = run - copy per ISP from the
    clear over REBOUND_S, cut at the next signal as settlement cuts it. (Without activations at all, the
    earlier activations' catch-up inside window j would be counted as j's shed.)
    """
    start = pd.Timestamp(cfg.start)
    sec = [(int((a.t_signal - start).total_seconds()), int((a.t_clear - start).total_seconds()))
           for a in acts.itertuples()]
    cap_da = int(batch.CAP_A * DA_PER_A)
    fleet, rows, branches = Fleet(cfg), [], []
    clear_at = -1
    for t in range(cfg.duration_s):
        j = next((k for k, (s0, _s1) in enumerate(sec) if s0 == t), None)
        if j is not None:
            s0, s1 = sec[j]
            end = min(s1 + REBOUND_S, sec[j + 1][0] if j + 1 < len(sec) else cfg.duration_s, cfg.duration_s)
            free = copy.deepcopy(fleet)
            free.step_until(end)
            branches.append((j, free.truth(), end))
            clear_at = s1
            for p in np.flatnonzero((fleet.current_da > cap_da) & (fleet.status == 1)):
                fleet.set_profile(int(p), t + delay_s, [(0, cap_da)], s1, effective_s=t + delay_s)
        arrived = fleet.step()
        if t < clear_at:
            for p in arrived:
                fleet.set_profile(int(p), t + delay_s, [(0, cap_da)], clear_at, effective_s=t + delay_s)
    truth = fleet.truth()
    for j, free, end in branches:
        s0, s1 = sec[j]
        # the same run as batch.run's, or the states settled would not be this truth's
        assert abs(truth.energy_kwh(s0, s1) - acts["energy_true_kwh"].iloc[j]) < 1e-9
        gross = value = 0.0
        for lo, hi in _pieces(start, s0, s1):
            shed = free.energy_kwh(lo, hi) - truth.energy_kwh(lo, hi)
            gross += shed / 1000 * prices.get((start + pd.Timedelta(seconds=lo)).floor("15min"), np.nan)
        rebound = 0.0
        for lo, hi in _pieces(start, s1, end):
            energy = truth.energy_kwh(lo, hi) - free.energy_kwh(lo, hi)
            rebound += energy
            value += energy / 1000 * prices.get((start + pd.Timedelta(seconds=lo)).floor("15min"), np.nan)
        shed = free.energy_kwh(s0, s1) - truth.energy_kwh(s0, s1)
        rows.append({"shed": shed, "rebound": rebound, "never": shed - rebound, "gross": gross, "net": gross - value})
    return pd.DataFrame(rows)


def _into_isp(start: pd.Timestamp, s: int) -> pd.Timedelta:
    return (start + pd.Timedelta(seconds=s)) - (start + pd.Timedelta(seconds=s)).floor("15min")


def _pieces(start: pd.Timestamp, s0: int, s1: int) -> list[tuple[int, int]]:
    """[s0, s1) cut at ISP boundaries, in seconds since `start`."""
    out, lo = [], s0
    while lo < s1:
        boundary = lo - int(_into_isp(start, lo).total_seconds()) + 900
        out.append((lo, min(boundary, s1)))
        lo = min(boundary, s1)
    return out


def on_true_power(result: batch.BatchResult, acts: pd.DataFrame, name: str) -> np.ndarray:
    """An aggregate baseline applied to the TRUE power, minus the true delivered energy: no reconstruction."""
    cfg = result.fleet.config
    power = per_second_to_bins(result.truth.power_kw(0, cfg.duration_s), pd.Timestamp(cfg.start))
    out = []
    for act in acts.itertuples():
        b = BASELINES[name](power, act.t_signal, act.t_clear, edges=detect_edges(power, act.t_signal, act.t_clear))
        out.append(b.energy_kwh())
    return np.array(out) - acts["energy_true_kwh"].to_numpy()


def one_seed(points: int, seed: int, notch: bool) -> dict:
    cfg = SimConfig(points=points, seed=seed, start=DAY - timedelta(seconds=MARGIN_S), duration_s=DAY_S + 2 * MARGIN_S)
    result = batch.run(cfg, hourly_activations(DAY, range(1, 24), seed))
    acts = result.activations.copy()
    acts["activation_id"] = acts["activation_id"].astype(str)
    prices = day_prices(cfg, seed)
    truth = marginal_truth(cfg, acts, prices)
    acts["shed_true_kwh"] = truth["shed"].to_numpy()
    out = {"seed": seed, "acts": acts, "sessions": len(result.sessions), "true_isp": true_isp_kwh(result),
           "truth_split": truth, "settled": {},
           "true_power": {n: on_true_power(result, acts, n) for n in AGGREGATE_BASELINES}}
    for label, states in scenarios(result, acts).items():
        for data, frame in (("currents", states), ("kWh only", kwh_only(states))):
            settled = settle_frames(frame, acts[["activation_id", "t_signal", "t_clear"]], prices, baseline=NAMES,
                                    params=SettleParams(notch=notch, rebound_window_s=REBOUND_S))
            rec = settled.reconstruction
            a = settled.activations.set_index("activation_id").loc[acts["activation_id"]]
            out["settled"][(label, data)] = {
                "activations": a, "states": len(frame),
                "isp": isp_energy_kwh(pd.Series(rec.bin_energy_kwh, index=rec.index))}
    return out


def shed_of(a: pd.DataFrame, name: str, first: str) -> np.ndarray:
    return a["shed_kwh" if name == first else f"{name}_shed_kwh"].to_numpy(float)


def shed_row(true: np.ndarray, est: np.ndarray) -> dict:
    e = shed_errors(true, est)
    rel = np.abs(est - true) / true * 100.0
    return {**e.__dict__, "worst_pct": float(np.nanmax(rel))}


def explain(points: int, seed: int, activation: int) -> None:
    """Split one activation's `sessions` shed error (clean states, currents) into its counterfactual part
    and its delivered (reconstruction) part, against the per-charge-point marginal truth."""
    cfg = SimConfig(points=points, seed=seed, start=DAY - timedelta(seconds=MARGIN_S), duration_s=DAY_S + 2 * MARGIN_S)
    windows = hourly_activations(DAY, range(1, 24), seed)
    start = pd.Timestamp(cfg.start)
    sec = [(int((pd.Timestamp(a) - start).total_seconds()), int((pd.Timestamp(b) - start).total_seconds()))
           for a, b in windows]
    s0, s1 = sec[activation - 1]
    cap_da = int(batch.CAP_A * DA_PER_A)
    fleet, free, clear_at = Fleet(cfg), None, -1
    for t in range(s1 + 1):
        j = next((k for k, (a, _b) in enumerate(sec) if a == t), None)
        if j is not None:
            if j == activation - 1:
                free = copy.deepcopy(fleet)
                free.step_until(s1 + 1)
            clear_at = sec[j][1]
            for p in np.flatnonzero((fleet.current_da > cap_da) & (fleet.status == 1)):
                fleet.set_profile(int(p), t + 20, [(0, cap_da)], clear_at, effective_s=t + 20)
        arrived = fleet.step()
        if t < clear_at:
            for p in arrived:
                fleet.set_profile(int(p), t + 20, [(0, cap_da)], clear_at, effective_s=t + 20)
    run, without = fleet.truth(), free.truth()
    result = batch.run(cfg, windows)
    acts = result.activations.assign(activation_id=result.activations["activation_id"].astype(str))
    rec = settle_frames(result.states, acts[["activation_id", "t_signal", "t_clear"]], None).reconstruction
    ts, tc = acts["t_signal"].iloc[activation - 1], acts["t_clear"].iloc[activation - 1]
    span = (tc - ts).total_seconds()
    w = session_window(rec, ts, tc)
    cf = session_counterfactual_kwh(w, np.array([span]), span)[:, 0]
    pts = np.array([int(e[4:9]) * 2 + int(e[-1]) - 1 for e in rec.evse_uids[w.codes]])  # EVSE00042-2 -> 85
    true_cf, true_dl = without.energy_kwh_by_point(s0, s1)[pts], run.energy_kwh_by_point(s0, s1)[pts]
    print(f"seed {seed} activation {activation} ({ts:%H:%M:%S}-{tc:%H:%M:%S}, {span:.0f} s), clean states with "
          f"currents, baseline sessions, {len(pts)} active sessions:\n"
          f"true shed {float((true_cf - true_dl).sum()):.2f} kWh, estimated {float((cf - w.delivered_kwh).sum()):.2f}; "
          f"counterfactual error {float((cf - true_cf).sum()):+.2f} kWh, delivered error "
          f"{float((w.delivered_kwh - true_dl).sum()):+.2f} kWh (shed error = counterfactual - delivered error)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int, default=1000)
    p.add_argument("--seeds", default="4,5,6", help="comma-separated simulator seeds (pooled)")
    p.add_argument("--no-notch", action="store_true", help="reconstruct without the activation windows")
    p.add_argument("--explain", metavar="SEED:ID", help="split one activation's shed error (sessions baseline)")
    args = p.parse_args()
    if args.explain:
        seed, activation = (int(x) for x in args.explain.split(":"))
        return explain(args.points, seed, activation)
    t0 = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = [one_seed(args.points, s, not args.no_notch) for s in seeds]
    names = NAMES
    keys = list(runs[0]["settled"])
    true_shed = np.concatenate([r["acts"]["shed_true_kwh"].to_numpy() for r in runs])

    print(f"# settlement accuracy: {args.points} charge points, seeds {args.seeds}, "
          f"{len(true_shed)} activations ({len(runs[0]['acts'])} per seed), "
          f"{sum(r['sessions'] for r in runs)} sessions; day 00:00-24:00 UTC of {DAY.date()} per seed; "
          f"notch shape {'off' if args.no_notch else 'on'}\n")
    print("## Reconstructed energy per ISP vs truth (96 ISPs per seed) and delivered energy during activations\n")
    rows = []
    for key in keys:
        isp_err = [energy_errors(r["true_isp"], r["settled"][key]["isp"]) for r in runs]
        est = np.concatenate([r["settled"][key]["activations"]["delivered_kwh"].to_numpy() for r in runs])
        true = np.concatenate([r["acts"]["energy_true_kwh"].to_numpy() for r in runs])
        d = shed_errors(true, est)
        thin = sum(int((r["settled"][key]["activations"]["data_quality"] == "thin").sum()) for r in runs)
        rows.append({"scenario": key[0], "data": key[1], "max": max(e.max_abs_pct for e in isp_err),
                     "mean": float(np.mean([e.mean_abs_pct for e in isp_err])),
                     "total": max((e.total_pct for e in isp_err), key=abs), "dpct": d.aggregate_pct,
                     "dmae": d.mae_kwh, "thin": f"{thin}/{len(true)}"})
    print(markdown_table(rows, [
        ("scenario", "scenario", ""), ("data", "states", ""), ("max", "ISP max abs %", ".3f"),
        ("mean", "ISP mean abs %", ".3f"), ("total", "day total % (worst seed)", "+.3f"),
        ("dpct", "delivered agg. %", "+.2f"), ("dmae", "delivered MAE kWh", ".2f"), ("thin", "thin", "")]))

    print("\n## Shed per baseline vs the marginal truth (true shed = the copy without the activation - the run), "
          "pooled over the activations of all seeds\n")
    rows = []
    for name in AGGREGATE_BASELINES:
        est = np.concatenate([r["true_power"][name] for r in runs])
        rows.append({"scenario": "true power", "data": "-", "baseline": name, **shed_row(true_shed, est)})
    for key in keys:
        for name in names:
            est = np.concatenate([shed_of(r["settled"][key]["activations"], name, names[0]) for r in runs])
            rows.append({"scenario": key[0], "data": key[1], "baseline": name, **shed_row(true_shed, est)})
    print(markdown_table(rows, [
        ("scenario", "scenario", ""), ("data", "states", ""), ("baseline", "baseline", ""),
        ("true_total_kwh", "true kWh", ".0f"), ("est_total_kwh", "est. kWh", ".0f"),
        ("aggregate_pct", "aggregate (bias) %", "+.2f"), ("bias_kwh", "bias kWh/act.", "+.2f"),
        ("median_abs_pct", "median abs %", ".2f"), ("mae_pct", "MAE %", ".2f"),
        ("worst_pct", "worst act. abs %", ".1f")]))

    print("\n## Aggregate shed error per seed (clean states), %\n")
    rows = []
    for data in ("currents", "kWh only"):
        for name in names:
            row = {"data": data, "baseline": name}
            for r in runs:
                a = r["settled"][("clean", data)]["activations"]
                row[str(r["seed"])] = shed_errors(r["acts"]["shed_true_kwh"], shed_of(a, name, names[0])).aggregate_pct
            rows.append(row)
    print(markdown_table(rows, [("data", "states", ""), ("baseline", "baseline", ""),
                                *[(str(s), f"seed {s}", "+.2f") for s in seeds]]))

    first = runs[0]
    print(f"\n## Per activation, seed {first['seed']}, clean states (kWh)\n")
    rows = []
    for i, act in enumerate(first["acts"].itertuples()):
        row = {"id": act.activation_id, "signal": act.t_signal.strftime("%H:%M:%S"),
               "clear": act.t_clear.strftime("%H:%M"), "true": act.shed_true_kwh}
        for data in ("currents", "kWh only"):
            a = first["settled"][("clean", data)]["activations"]
            for name in names:
                row[f"{data}:{name}"] = shed_of(a, name, names[0])[i]
        rows.append(row)
    print(markdown_table(rows, [("id", "id", ""), ("signal", "signal", ""), ("clear", "clear", ""),
                                ("true", "true shed", ".1f"),
                                *[(f"currents:{n}", n, ".1f") for n in names],
                                *[(f"kWh only:{n}", f"{n} (kWh only)", ".1f") for n in names]]))

    print(f"\n## Shed / rebound / never delivered and value, seed {first['seed']}, clean states with currents, "
          f"baseline {names[0]} (rebound window {REBOUND_S // 60} min, cut at the next signal)\n")
    truth = first["truth_split"]
    a = first["settled"][("clean", "currents")]["activations"]
    rows = []
    for i, act in enumerate(first["acts"].itertuples()):
        t, e = truth.iloc[i], a.iloc[i]
        rows.append({"id": act.activation_id, "shed": e["shed_kwh"], "tshed": t["shed"], "reb": e["rebound_kwh"],
                     "treb": t["rebound"], "never": e["never_delivered_kwh"], "tnever": t["never"],
                     "gross": e["value_eur"], "tgross": t["gross"], "net": e["net_value_eur"], "tnet": t["net"]})
    rows.append({"id": "sum", **{k: float(np.sum([r[k] for r in rows])) for k in rows[0] if k != "id"}})
    print(markdown_table(rows, [
        ("id", "id", ""), ("shed", "shed kWh", ".1f"), ("tshed", "true", ".1f"), ("reb", "rebound kWh", ".1f"),
        ("treb", "true", ".1f"), ("never", "never delivered kWh", ".1f"), ("tnever", "true", ".1f"),
        ("gross", "gross EUR", ".2f"), ("tgross", "true", ".2f"), ("net", "net EUR", ".2f"), ("tnet", "true", ".2f")]))
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
