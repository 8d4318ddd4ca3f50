"""PNG charts of a settlement: what each activation chart shows (`shed_spec`, `theoretical_spec`, drawn by
`settlement.outputs.drawing`) and the time-of-day chart, drawn here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from settlement.core.settle import SettlementResult
from settlement.outputs.drawing import ShedChart, TheoreticalChart

MARGIN = pd.Timedelta(minutes=30)


def _window(series: pd.Series, t_signal: pd.Timestamp, t_clear: pd.Timestamp) -> pd.Series:
    return series[(series.index >= t_signal - MARGIN) & (series.index <= t_clear + MARGIN)]


def _utc(times) -> np.ndarray:
    """Aware times as naive UTC datetime64 (what the drawing process gets: no pandas there)."""
    return pd.to_datetime(list(times), utc=True).tz_localize(None).to_numpy()


def _at(when: pd.Timestamp) -> np.datetime64:
    return _utc([when])[0]


def shed_spec(result: SettlementResult, activation_id: str) -> ShedChart:
    """Power around the activation with its baseline and the shed area (the paper's figure 8)."""
    baseline = next(iter(result.baselines[activation_id].values()))
    ts, tc = baseline.t_signal, baseline.t_clear
    power = _window(result.reconstruction.power_kw(), ts, tc)
    # A summed per-session counterfactual is drawn as its mean power per minute, the line by its ends.
    marks = [ts, tc] if baseline.curve is None else list(pd.date_range(ts, tc, freq="60s"))
    inside = power[(power.index >= ts) & (power.index < tc)]
    fill_t, fill_kw = [], []
    if len(inside):
        # Repeat the last bin at t_clear so the post-step fill reaches the end of the activation.
        fill_t, fill_kw = [*inside.index, tc], [*inside.to_numpy(), inside.iloc[-1]]
    edges = baseline.edges
    drawn = [w for w in ((edges.drop_at, edges.recovery_at) if edges else ()) if w is not None]
    return ShedChart(
        title=f"activation {activation_id}: shed against baseline", t_signal=_at(ts), t_clear=_at(tc),
        power_t=_utc(power.index), power_kw=power.to_numpy(),
        baseline_t=_utc(marks), baseline_kw=np.array([baseline.power_at(t) for t in marks]),
        baseline_label=f"{baseline.name} baseline", step_baseline=baseline.curve is not None,
        fill_t=_utc(fill_t), fill_kw=np.asarray(fill_kw, float),
        fill_baseline_kw=np.array([baseline.power_at(t) for t in fill_t], float),
        edges=tuple(_at(w) for w in drawn))


def theoretical_spec(result: SettlementResult, activation_id: str) -> TheoreticalChart:
    """Historical vs theoretical minimum power (every session at most 8 A) around the event (figure 9)."""
    baseline = next(iter(result.baselines[activation_id].values()))
    ts, tc = baseline.t_signal, baseline.t_clear
    rec = result.reconstruction
    power, floor = _window(rec.power_kw(), ts, tc), _window(rec.theoretical_kw(), ts, tc)
    return TheoreticalChart(
        title=f"activation {activation_id}: historical vs theoretical minimum", t_signal=_at(ts), t_clear=_at(tc),
        power_t=_utc(power.index), power_kw=power.to_numpy(), floor_kw=floor.to_numpy())


def erasable_chart(result: SettlementResult, path: Path) -> None:
    """Mean erasable power per time of day (figure 10)."""
    table = result.erasable_by_tod
    fig = Figure(figsize=(10, 4))
    ax = fig.subplots()
    ax.bar(range(len(table)), table["erasable_kw_mean"].to_numpy(), color="tab:green", label="mean erasable power")
    step = max(1, len(table) // 12)
    ax.set_xticks(range(0, len(table), step), table.index[::step], rotation=45)
    ax.set_title("erasable power by time of day (UTC)")
    ax.set_xlabel("time of day (UTC)")
    ax.set_ylabel("power (kW)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
