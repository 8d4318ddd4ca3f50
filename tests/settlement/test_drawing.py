"""Activation charts drawn by other processes: the same files as drawn here, failures raised, and the rule
for when processes are worth starting."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from settlement.outputs import drawing


def _charts(n: int) -> list[drawing.TheoreticalChart]:
    t = np.arange(np.datetime64("2025-05-06T22:00"), np.datetime64("2025-05-06T23:30"), np.timedelta64(1, "m"))
    rng = np.random.default_rng(7)
    return [drawing.TheoreticalChart(title=f"activation {i}", t_signal=t[30], t_clear=t[45], power_t=t,
                                     power_kw=rng.uniform(50, 90, len(t)), floor_kw=rng.uniform(10, 40, len(t)))
            for i in range(n)]


def test_charts_drawn_by_processes_are_the_files_drawn_here(tmp_path):
    charts = _charts(16)
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    order, done = [], []
    drawing.render_all([(c, here / f"{i}.png") for i, c in enumerate(charts)], 0)
    written = drawing.render_all([(c, there / f"{i}.png") for i, c in enumerate(charts)], 2,
                                 meanwhile=lambda: order.append("meanwhile"), done=done.append)
    assert written == [there / f"{i}.png" for i in range(16)]
    assert sorted(done) == sorted(written) and order == ["meanwhile"]
    for i in range(16):
        assert (there / f"{i}.png").read_bytes() == (here / f"{i}.png").read_bytes()
    assert (here / "0.png").read_bytes() != (here / "1.png").read_bytes()  # the data shows in the file


def test_a_chart_failing_in_a_drawing_process_raises_here(tmp_path):
    jobs = [(c, tmp_path / f"{i}.png") for i, c in enumerate(_charts(3))]
    jobs.append((_charts(1)[0], tmp_path / "missing-folder" / "x.png"))
    with pytest.raises(FileNotFoundError):
        drawing.render_all(jobs, 2)


@pytest.mark.parametrize(("charts", "wanted", "processes"), [
    (60, 4, 4),  # a 16,000-point day: 30 activations, two charts each
    (60, 2, 2),
    (20, 4, 2),  # 8 charts per process at least: starting one costs about as much as drawing 8
    (7, 4, 0),   # a small settlement: drawn here
    (60, 0, 0),  # SETTLEMENT_CHART_PROCESSES=0: always here
])
def test_processes_are_started_only_where_they_pay(charts, wanted, processes):
    assert drawing.drawing_processes(charts, wanted) == processes


def test_a_prefork_worker_draws_its_charts_itself(monkeypatch):
    """A daemonic process (Celery's prefork children) may not have children of its own."""
    monkeypatch.setattr(drawing.multiprocessing, "current_process", lambda: SimpleNamespace(daemon=True))
    assert drawing.drawing_processes(60, 4) == 0
