"""Settlement accuracy against a ground truth: pure error measures (numpy/pandas, no Django).

Used by `bench/settlement_accuracy.py`, which runs the simulator with and without activations and
feeds both sides here. Definitions (docs/accuracy.md):

- per-ISP energy error = (reconstructed - true) / true, per ISP of the compared window;
- aggregate shed error = (sum of estimated shed - sum of true shed) / sum of true shed;
- per activation: bias = mean(estimated - true), MAE = mean |estimated - true| (kWh); MAE also in %
  of the mean true shed per activation (a ratio of means, so a 30-second activation with almost no
  shed cannot blow the figure up; the bias in % of the mean equals the aggregate error, so it is not
  repeated), and the median of |estimated - true| / true over activations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

ISP = pd.Timedelta(minutes=15)


@dataclass(frozen=True)
class EnergyErrors:
    n: int
    max_abs_pct: float
    mean_abs_pct: float
    total_pct: float  # error of the sum over all compared ISPs
    worst_at: pd.Timestamp | None


@dataclass(frozen=True)
class ShedErrors:
    n: int
    true_total_kwh: float
    est_total_kwh: float
    aggregate_pct: float
    bias_kwh: float
    mae_kwh: float
    mae_pct: float  # of the mean true shed per activation
    median_abs_pct: float  # median over activations of |est - true| / true


def isp_energy_kwh(bin_energy_kwh: pd.Series) -> pd.Series:
    """Sum grid-bin energies (indexed by bin start) per 15-min ISP; bins must not straddle a boundary."""
    idx = bin_energy_kwh.index
    if len(idx) > 1:
        step = idx[1] - idx[0]
        if ISP % step != pd.Timedelta(0) or (idx[0] - idx[0].floor(ISP)) % step != pd.Timedelta(0):
            raise ValueError("grid bins straddle ISP boundaries (use a grid step dividing 15 min)")
    return bin_energy_kwh.groupby(idx.floor(ISP)).sum()


def energy_errors(true_kwh: pd.Series, est_kwh: pd.Series) -> EnergyErrors:
    """Errors of `est_kwh` against `true_kwh` over the true series' index (missing estimates count as 0)."""
    if not len(true_kwh):
        raise ValueError("nothing to compare")
    if (true_kwh <= 0).any():
        raise ValueError("true energy must be positive in every compared interval")
    est = est_kwh.reindex(true_kwh.index, fill_value=0.0)
    rel = (est - true_kwh) / true_kwh * 100.0
    worst = rel.abs().idxmax()
    return EnergyErrors(len(true_kwh), float(rel.abs().max()), float(rel.abs().mean()),
                        float((est.sum() - true_kwh.sum()) / true_kwh.sum() * 100.0), worst)


def shed_errors(true_kwh: Sequence[float], est_kwh: Sequence[float]) -> ShedErrors:
    """Aggregate and per-activation errors of estimated shed energy (NaN estimates are left out)."""
    true, est = np.asarray(true_kwh, float), np.asarray(est_kwh, float)
    if true.shape != est.shape:
        raise ValueError("true and estimated shed must have one value per activation each")
    ok = ~np.isnan(est) & ~np.isnan(true)
    true, est = true[ok], est[ok]
    if not len(true):
        raise ValueError("nothing to compare")
    diff = est - true
    with np.errstate(divide="ignore"):
        relative = np.abs(diff) / np.abs(true) * 100.0
    return ShedErrors(len(true), float(true.sum()), float(est.sum()),
                      float(diff.sum() / true.sum() * 100.0), float(diff.mean()), float(np.abs(diff).mean()),
                      float(np.abs(diff).mean() / true.mean() * 100.0), float(np.median(relative)))


def per_second_to_bins(power_kw: np.ndarray, start: pd.Timestamp, grid_s: int = 60) -> pd.Series:
    """Mean power per grid bin (indexed by bin start) from a 1-second power array starting at `start`."""
    n = len(power_kw) // grid_s
    if n == 0:
        raise ValueError("fewer seconds than one grid bin")
    means = np.asarray(power_kw[: n * grid_s], float).reshape(n, grid_s).mean(axis=1)
    return pd.Series(means, index=pd.date_range(start, periods=n, freq=pd.Timedelta(seconds=grid_s)),
                     name="power_kw")


def hourly_activations(start: datetime, hours: Sequence[int], seed: int, min_s: int = 120,
                       max_s: int = 900) -> list[tuple[datetime, datetime]]:
    """One activation per given hour after `start`: it clears at a random ISP boundary h:15, h:30 or
    h:45 (the product's rule: clear at the next boundary) and lasts a random [min_s, max_s] seconds
    (signal = clear - length), so activations never overlap and every one has at least 15 minutes of
    unsteered power after it for the trapezoid's post-clear fit.
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if not 0 < min_s <= max_s <= 900:
        raise ValueError("activation length must be within (0, 900] seconds")
    rng = np.random.default_rng([seed, 44])
    out = []
    for h in hours:
        clear = start + timedelta(hours=int(h), minutes=15 * int(rng.integers(1, 4)))
        length = int(rng.integers(min_s, max_s + 1))
        out.append((clear - timedelta(seconds=length), clear))
    return out


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """rows -> a Markdown table; columns are (key, header, format spec)."""
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"
    body = []
    for row in rows:
        cells = []
        for key, _, spec in columns:
            value = row.get(key, "")
            cells.append(format(value, spec) if spec and isinstance(value, int | float) else str(value))
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *body])
