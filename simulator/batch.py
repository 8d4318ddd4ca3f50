"""Batch mode: a whole run without HTTP, for settlement accuracy and benchmarks.

`run(config, activations)` steps the fleet through the run. At each t_signal every session
drawing more than 8 A gets an 8 A profile from t_signal + response delay until t_clear, and
so does every session that starts while the activation runs (what a perfect SCSP would do;
the 30 min / 4 h budget is the product's business, not the simulator's). It returns the
states in the analysts' S.csv shape, as the SCSP would have received them (faults applied),
with the ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.config import DA_PER_A, VOLTAGE_V, Faults, SimConfig
from simulator.physics import Fleet, StateBatch
from simulator.truth import Truth

CAP_A = 8.0
ISP_S = 900


@dataclass
class BatchResult:
    states: pd.DataFrame  # S.csv shape, in delivery order
    truth: Truth
    activations: pd.DataFrame  # activation_id, t_signal, t_clear (+ ground truth columns)
    sessions: pd.DataFrame  # one row per session: ground truth about it
    fleet: Fleet
    baseline: Truth | None = None  # the same run without activations (counterfactual)
    raw_states: StateBatch | None = None  # every state emitted, before faults (see redeliver)


def evse_uid(point: int) -> str:
    return f"EVSE{point // 2:05d}-{point % 2 + 1}"


def station_id(point: int) -> str:
    return f"LOC{point // 2:05d}"


def random_activations(config: SimConfig, count: int) -> list[tuple[datetime, datetime]]:
    """`count` non-overlapping activations: a random signal, cleared at the next ISP boundary.

    The run is cut into `count` equal slots and each signal falls in the first half of its slot,
    so activations are at least half a slot apart (room for the recovery edge). Boundaries less
    than 3 minutes away are skipped (the product relays, then waits for the next).
    """
    rng = np.random.default_rng([config.seed, 4])
    usable = config.duration_s - 3 * ISP_S
    slot = usable // max(count, 1)
    if count and slot < 2 * ISP_S:
        raise ValueError(f"cannot fit {count} activations into {config.duration_s} s")
    start_epoch = int(config.start.timestamp())
    out = []
    for i in range(count):
        t = ISP_S + i * slot + int(rng.integers(0, slot // 2))
        boundary = ((start_epoch + t) // ISP_S + 1) * ISP_S - start_epoch
        if boundary - t < 180:
            boundary += ISP_S
        out.append((config.start + timedelta(seconds=t), config.start + timedelta(seconds=boundary)))
    return out


def _to_s(config: SimConfig, when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("activation times must be timezone-aware UTC")
    return int((when - config.start).total_seconds())


def _simulate(config: SimConfig, windows: list[tuple[int, int]], delay_s: int) -> tuple[Fleet, list[int]]:
    fleet = Fleet(config)
    cap_da = int(CAP_A * DA_PER_A)
    capped_counts = []
    signals = {sig: clear for sig, clear in windows}
    current_clear = -1
    for t in range(config.duration_s):
        if t in signals:
            current_clear = signals[t]
            # "Above 8 A at t_signal": the current drawn during the second before the signal.
            pts = np.flatnonzero((fleet.current_da > cap_da) & (fleet.status == 1))
            for p in pts:
                fleet.set_profile(int(p), t + delay_s, [(0, cap_da)], current_clear, effective_s=t + delay_s)
            capped_counts.append(len(pts))
        arrived = fleet.step()
        if t < current_clear and len(arrived):
            for p in arrived:
                fleet.set_profile(int(p), t + delay_s, [(0, cap_da)], current_clear, effective_s=t + delay_s)
    return fleet, capped_counts


def run(config: SimConfig, activations: Sequence[tuple[datetime, datetime]] = (), response_delay_s: int = 20,
        counterfactual: bool = False) -> BatchResult:
    windows = sorted((_to_s(config, a), _to_s(config, b)) for a, b in activations)
    for i, (s0, s1) in enumerate(windows):
        nxt = windows[i + 1] if i + 1 < len(windows) else None
        if not 0 <= s0 < s1 <= config.duration_s:
            raise ValueError(f"activation ({s0} s, {s1} s) outside the run or empty")
        if nxt is not None and nxt[0] < s1:
            raise ValueError("activations overlap")
    fleet, capped = _simulate(config, windows, response_delay_s)
    truth = fleet.truth()
    baseline = _simulate(config, [], response_delay_s)[0].truth() if counterfactual else None
    raw = fleet.drain_states()
    states = states_frame(config, fleet, raw)
    acts = pd.DataFrame({
        "activation_id": np.arange(1, len(windows) + 1),
        "t_signal": pd.to_datetime([config.start + timedelta(seconds=a) for a, _ in windows], utc=True),
        "t_clear": pd.to_datetime([config.start + timedelta(seconds=b) for _, b in windows], utc=True),
    })
    acts["sessions_capped_true"] = capped
    acts["energy_true_kwh"] = [truth.energy_kwh(a, b) for a, b in windows]
    if baseline is not None:
        acts["energy_baseline_true_kwh"] = [baseline.energy_kwh(a, b) for a, b in windows]
        acts["shed_true_kwh"] = acts["energy_baseline_true_kwh"] - acts["energy_true_kwh"]
    return BatchResult(states, truth, acts, sessions_frame(config, fleet), fleet, baseline, raw)


def redeliver(result: BatchResult, faults: Faults) -> pd.DataFrame:
    """The same run's states as delivered under other faults (drops, outages...), without re-simulating.

    Faults on states do not change the physics, so one run serves several delivery scenarios.
    """
    if result.raw_states is None:
        raise ValueError("this result kept no raw states")
    return states_frame(replace(result.fleet.config, faults=faults), result.fleet, result.raw_states)


def states_frame(config: SimConfig, fleet: Fleet, batch: StateBatch) -> pd.DataFrame:
    """States as delivered to the SCSP: S.csv columns plus station_id, faults applied."""
    f = config.faults
    rng = np.random.default_rng([config.seed, 3])
    keep = rng.random(len(batch)) >= f.drop_state_share
    for o in f.outages:
        keep &= ~((batch.point >= o.first_point) & (batch.point < o.last_point)
                  & (batch.t_s >= o.start_s) & (batch.t_s < o.end_s))
    rows = np.flatnonzero(keep)
    dup = rows[rng.random(len(rows)) < f.duplicate_state_share]
    rows = np.concatenate([rows, dup])
    delivery_s = batch.t_s[rows] + rng.uniform(0, 2, len(rows))
    late = rng.random(len(rows)) < f.out_of_order_share
    delivery_s[late] += rng.uniform(300, 900, int(late.sum()))  # arrives after newer states
    rows = rows[np.argsort(delivery_s, kind="stable")]

    pts, ph = batch.point[rows], batch.phases[rows]
    reports = fleet.reports_current[pts]
    profile = config.behaviour.profile
    if profile == "current-average":  # the period's average current, as the live profile sends it
        cur_a = period_average_a(batch)[rows]
    else:
        cur_a = batch.current_da[rows] / DA_PER_A
    if profile in ("standard", "power-only"):  # no currents at all: kWh (and power) only
        reports = np.zeros(len(rows), bool)
    other = np.where((ph == 3) | np.isnan(cur_a), cur_a, 0.0)  # a 1-phase EV shows 0 A on L2 and L3
    sess_ids = np.array([fleet.session_id(i) for i in range(len(fleet.pop))], dtype=object)
    evse = np.array([evse_uid(p) for p in range(config.n_points)], dtype=object)
    stations = np.array([station_id(p) for p in range(config.n_points)], dtype=object)
    return pd.DataFrame({
        "session_id": sess_ids[batch.session[rows]],
        "evse_uid": evse[pts],
        "timestamp": pd.to_datetime(int(config.start.timestamp()) + batch.t_s[rows], unit="s", utc=True),
        "kwh": batch.kwh[rows],
        "current_l1_a": np.where(reports, cur_a, np.nan),
        "current_l2_a": np.where(reports, other, np.nan),
        "current_l3_a": np.where(reports, other, np.nan),
        "station_id": stations[pts],
        "status": np.where(batch.completed[rows], "COMPLETED", "ACTIVE"),
    })


def period_average_a(batch: StateBatch) -> np.ndarray:
    """Per state: the average per-phase current since the session's previous state, from the kWh
    difference (energy-conserving); NaN for a session's first state."""
    order = np.lexsort((batch.t_s, batch.session))
    sess, t_s, kwh, ph = batch.session[order], batch.t_s[order], batch.kwh[order], batch.phases[order]
    out_sorted = np.full(len(order), np.nan)
    same = sess[1:] == sess[:-1]
    dt_h = (t_s[1:] - t_s[:-1]) / 3600
    with np.errstate(divide="ignore", invalid="ignore"):
        avg = (kwh[1:] - kwh[:-1]) / dt_h * 1000 / (VOLTAGE_V * ph[1:])
    out_sorted[1:] = np.where(same & (dt_h > 0), np.round(avg, 1), np.nan)
    out = np.empty(len(order))
    out[order] = out_sorted
    return out


def sessions_frame(config: SimConfig, fleet: Fleet) -> pd.DataFrame:
    pop = fleet.pop
    start_epoch = int(config.start.timestamp())
    end = fleet.session_end_s
    return pd.DataFrame({
        "session_id": [fleet.session_id(i) for i in range(len(pop))],
        "evse_uid": [evse_uid(p) for p in pop.point],
        "station_id": [station_id(p) for p in pop.point],
        "start": pd.to_datetime(start_epoch + pop.started_s.astype(np.int64), unit="s", utc=True),
        "end": pd.to_datetime(np.where(end >= 0, start_epoch + end, np.iinfo(np.int64).min), unit="s",
                              utc=True, errors="coerce").where(end >= 0),
        "depart": pd.to_datetime(start_epoch + pop.depart_s.astype(np.int64), unit="s", utc=True),
        "phases": pop.phases,
        "max_a": pop.max_da / DA_PER_A,
        "battery_kwh": pop.battery_kwh,
        "early_unplug": pop.early_unplug,
        "responsive": fleet.responsive[pop.point],
        "evse_ignored_limit": fleet.limit_ignored,  # a profile reached its EVSE, which kept full power
        "not_resumed_at": pd.to_datetime(np.where(fleet.not_resumed_s >= 0, start_epoch + fleet.not_resumed_s, 0),
                                         unit="s", utc=True).where(fleet.not_resumed_s >= 0),
    })


def write_csvs(result: BatchResult, out_dir: Path) -> dict[str, Path]:
    """S.csv (states), A.csv (activations), meters.csv (15-min station meters) and truth files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("S.csv", "A.csv", "meters.csv", "sessions_truth.csv",
                                               "activations_truth.csv")}
    cols = ["session_id", "evse_uid", "timestamp", "kwh", "current_l1_a", "current_l2_a", "current_l3_a",
            "station_id"]
    result.states[cols].to_csv(paths["S.csv"], index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    result.activations[["activation_id", "t_signal", "t_clear"]].to_csv(
        paths["A.csv"], index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    result.activations.to_csv(paths["activations_truth.csv"], index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    cfg = result.fleet.config
    result.truth.meter_energy(0, cfg.duration_s, ISP_S).to_csv(
        paths["meters.csv"], index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    result.sessions.to_csv(paths["sessions_truth.csv"], index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    return paths
