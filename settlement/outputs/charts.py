"""PNG charts of a settlement (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd

from settlement.core.baselines import Baseline
from settlement.core.settle import SettlementResult

MARGIN = pd.Timedelta(minutes=30)
MARGINS = {"left": 0.09, "right": 0.98, "top": 0.93, "bottom": 0.11}
PNG = {"compress_level": 1}  # zlib's fastest level: 60 charts in ~1/3 of level 6's time, files ~1.3x larger
LEGEND_AT = "upper right"  # "best" searches the data for the emptiest corner, per chart


def _window(series: pd.Series, t_signal: pd.Timestamp, t_clear: pd.Timestamp) -> pd.Series:
    return series[(series.index >= t_signal - MARGIN) & (series.index <= t_clear + MARGIN)]


def _finish(fig, ax, path: Path, title: str) -> None:
    ax.set_title(title)
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("power (kW)")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz="UTC"))
    ax.grid(alpha=0.3)
    ax.legend(loc=LEGEND_AT, fontsize=8)
    # Fixed margins, not tight_layout: the charts share one layout, and measuring every label for it
    # was a third of the chart time (cProfile, 60 charts of a 16,000-point day).
    fig.subplots_adjust(**MARGINS)
    fig.savefig(path, dpi=100, pil_kwargs=PNG)
    plt.close(fig)


def shed_chart(result: SettlementResult, activation_id: str, path: Path) -> None:
    """Power around the activation with its baseline and the shed area (the paper's figure 8)."""
    baseline: Baseline = next(iter(result.baselines[activation_id].values()))
    ts, tc = baseline.t_signal, baseline.t_clear
    power = _window(result.reconstruction.power_kw(), ts, tc)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.step(power.index, power.to_numpy(), where="post", label="reconstructed power", color="tab:blue")
    if baseline.curve is None:
        ax.plot([ts, tc], [baseline.p_signal_kw, baseline.p_clear_kw], color="tab:red",
                label=f"{baseline.name} baseline")
    else:  # a summed per-session counterfactual: its mean power per minute
        marks = pd.date_range(ts, tc, freq="60s")
        ax.step(marks, [baseline.power_at(t) for t in marks], where="post", color="tab:red",
                label=f"{baseline.name} baseline")
    inside = power[(power.index >= ts) & (power.index < tc)]
    if len(inside):
        # Repeat the last bin at t_clear so the post-step fill reaches the end of the activation.
        x = [*inside.index, tc]
        y = [*inside.to_numpy(), inside.iloc[-1]]
        ax.fill_between(x, y, [baseline.power_at(t) for t in x], step="post", color="tab:orange", alpha=0.4,
                        label="shed energy")
    ax.axvline(ts, color="grey", ls="--", lw=1, label="signal / clear (given)")
    ax.axvline(tc, color="grey", ls="--", lw=1)
    edges = baseline.edges
    for when in (edges.drop_at, edges.recovery_at) if edges else ():
        if when is not None:
            ax.axvline(when, color="black", ls=":", lw=1)
    _finish(fig, ax, path, f"activation {activation_id}: shed against baseline")


def theoretical_chart(result: SettlementResult, activation_id: str, path: Path) -> None:
    """Historical vs theoretical minimum power (every session at most 8 A) around the event (figure 9)."""
    baseline = next(iter(result.baselines[activation_id].values()))
    ts, tc = baseline.t_signal, baseline.t_clear
    rec = result.reconstruction
    power, floor = _window(rec.power_kw(), ts, tc), _window(rec.theoretical_kw(), ts, tc)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.step(power.index, power.to_numpy(), where="post", label="historical")
    ax.step(floor.index, floor.to_numpy(), where="post", label="theoretical minimum (8 A)")
    ax.axvspan(ts, tc, color="grey", alpha=0.15, label="activation")
    _finish(fig, ax, path, f"activation {activation_id}: historical vs theoretical minimum")


def erasable_chart(result: SettlementResult, path: Path) -> None:
    """Mean erasable power per time of day (figure 10)."""
    table = result.erasable_by_tod
    fig, ax = plt.subplots(figsize=(10, 4))
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
    plt.close(fig)
