"""Drawing the activation charts from small picklable descriptions, with nothing but numpy and matplotlib.

`settlement.outputs.charts` describes each chart from a settlement result (the windowed series it
draws, times as naive UTC datetime64); this module draws them. Drawing costs matplotlib about the same
whatever the data (text and ticks, mostly), and a 16,000-point day with 30 activations has 60 charts,
so `render_all` can hand them to other processes. Those come from a fork server that imports this
module once: the charts need neither pandas nor the settlement code, and a process forked from it
starts at once.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import forkserver
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import numpy as np
from matplotlib.figure import Figure

log = logging.getLogger(__name__)

MARGINS = {"left": 0.09, "right": 0.98, "top": 0.93, "bottom": 0.11}
PNG = {"compress_level": 1}  # zlib's fastest level: 60 charts in ~1/3 of level 6's time, files ~1.3x larger
LEGEND_AT = "upper right"  # "best" searches the data for the emptiest corner, per chart
# Below this many charts per drawing process, drawing them here is quicker than handing them over.
CHARTS_PER_PROCESS = 8


@dataclass(frozen=True)
class _AroundActivation:
    """What every activation chart has: its title, the activation and the fleet's power around it."""

    title: str
    t_signal: np.datetime64
    t_clear: np.datetime64
    power_t: np.ndarray  # datetime64, naive UTC
    power_kw: np.ndarray


@dataclass(frozen=True)
class ShedChart(_AroundActivation):
    """Power around the activation with its baseline and the shed area (the paper's figure 8)."""

    baseline_t: np.ndarray
    baseline_kw: np.ndarray
    baseline_label: str
    step_baseline: bool  # a summed per-session counterfactual is drawn as its mean power per minute
    fill_t: np.ndarray
    fill_kw: np.ndarray
    fill_baseline_kw: np.ndarray
    edges: tuple[np.datetime64, ...]

    def draw(self, ax) -> None:
        ax.step(self.power_t, self.power_kw, where="post", label="reconstructed power", color="tab:blue")
        line = ax.step if self.step_baseline else ax.plot
        kw = {"where": "post"} if self.step_baseline else {}
        line(self.baseline_t, self.baseline_kw, color="tab:red", label=self.baseline_label, **kw)
        if len(self.fill_t):
            ax.fill_between(self.fill_t, self.fill_kw, self.fill_baseline_kw, step="post", color="tab:orange",
                            alpha=0.4, label="shed energy")
        ax.axvline(self.t_signal, color="grey", ls="--", lw=1, label="signal / clear (given)")
        ax.axvline(self.t_clear, color="grey", ls="--", lw=1)
        for when in self.edges:
            ax.axvline(when, color="black", ls=":", lw=1)


@dataclass(frozen=True)
class TheoreticalChart(_AroundActivation):
    """Historical vs theoretical minimum power (every session at most 8 A) around the event (figure 9)."""

    floor_kw: np.ndarray  # on power_t

    def draw(self, ax) -> None:
        ax.step(self.power_t, self.power_kw, where="post", label="historical")
        ax.step(self.power_t, self.floor_kw, where="post", label="theoretical minimum (8 A)")
        ax.axvspan(self.t_signal, self.t_clear, color="grey", alpha=0.15, label="activation")


Chart = ShedChart | TheoreticalChart


def render(chart: Chart, path: Path) -> Path:
    """Draw one chart into a PNG file (a plain Figure, not pyplot: nothing global to close)."""
    fig = Figure(figsize=(9, 4.5))
    ax = fig.subplots()
    chart.draw(ax)
    ax.set_title(chart.title)
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("power (kW)")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz="UTC"))
    ax.grid(alpha=0.3)
    ax.legend(loc=LEGEND_AT, fontsize=8)
    # Fixed margins, not tight_layout: the charts share one layout, and measuring every label for it
    # was a third of the chart time (cProfile, 60 charts of a 16,000-point day).
    fig.subplots_adjust(**MARGINS)
    fig.savefig(path, dpi=100, pil_kwargs=PNG)
    return path


def drawing_processes(charts: int, wanted: int) -> int:
    """How many processes draw `charts` charts: at most `wanted`, none where starting them costs more
    than it saves, and none inside a daemonic process (a prefork Celery worker), which may not have
    children."""
    if multiprocessing.current_process().daemon:
        return 0
    return max(0, min(wanted, charts // CHARTS_PER_PROCESS))


def render_all(jobs: Iterable[tuple[Chart, Path]], processes: int, meanwhile: Callable[[], None] = lambda: None,
               done: Callable[[Path], None] | None = None) -> list[Path]:
    """Draw every chart, by `processes` processes forked from the fork server (0: here), running
    `meanwhile` in this process while they draw. A failure in any raises here, once every process has stopped."""
    jobs = list(jobs)
    if processes <= 0:
        meanwhile()
        for chart, path in jobs:
            render(chart, path)
            if done:
                done(path)
        return [path for _chart, path in jobs]
    with ProcessPoolExecutor(processes, mp_context=_fork_server()) as pool:
        futures = [pool.submit(render, chart, path) for chart, path in jobs]
        meanwhile()
        for future in as_completed(futures):
            path = future.result()
            if done:
                done(path)
    log.debug("%d charts drawn by %d processes", len(jobs), processes)
    return [path for _chart, path in jobs]


def start_fork_server(processes: int) -> None:
    """Start the fork server now, if drawing processes may be used: it imports numpy and matplotlib
    on another core while this process reads and computes, instead of after, when the charts wait
    for it. Once started it serves every later settlement of this process."""
    if processes > 0 and not multiprocessing.current_process().daemon:
        _fork_server()
        forkserver.ensure_running()


def _fork_server() -> multiprocessing.context.BaseContext:
    """A fork server, not a fork of this process: the caller may be a web or worker process with threads
    and open connections. The server imports this module once; each drawing process is forked from it."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context
