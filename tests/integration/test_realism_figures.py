"""bench/realism.py's figures on a hand-computed case (the end-to-end run itself is the benchmark)."""

from __future__ import annotations

import pytest

from bench.realism import ActivationSeen, CapSeen, RunSeen, figures


def test_figures_of_a_small_run_are_the_hand_computed_ones():
    run = RunSeen(
        seed=1, state_interval_s=5,
        activations=[
            ActivationSeen(above=["S1", "S2"], capped=["S1", "S2", "S3"], expected_kw=10.0, true_shed_kw=8.0,
                           preview_kw=(6.0, 12.0)),
            ActivationSeen(above=["S4"], capped=[], expected_kw=0.0, true_shed_kw=0.0),  # no truth: no error
        ],
        caps=[
            CapSeen("S1", "E1", "responded", ignored=False, phases=3),  # right
            CapSeen("S2", "E2", "not_responded", ignored=True, phases=3),  # right
            CapSeen("S3", "E2", "no_data", ignored=True, phases=1),  # not judged, but E2 ignored twice
            CapSeen("S5", "E3", "responded", ignored=True, phases=1),  # wrong
            CapSeen("S6", "E4", "not_responded", ignored=False, phases=3),  # wrong
        ],
        flagged=["E2", "E4"],
    )
    found = figures(run, failures_n=2)
    assert found["capped_share"] == pytest.approx(2 / 3)  # S1, S2 of S1, S2, S4
    assert found["shed_error"] == pytest.approx(0.25)  # |10 - 8| / 8
    assert found["shed_error_range"] == [pytest.approx(0.25), pytest.approx(0.25)]
    assert found["truth_in_preview_range"] == 2  # 6 <= 8 <= 12, and 0 <= 0 <= 0
    assert (found["verdicts"], found["verdicts_right"], found["no_data"]) == (4, 0.5, 1)
    assert found["wrong_by_truth"] == {"1-phase ignoring": 1, "3-phase obeying": 1}
    assert found["no_data_by_truth"] == {"1-phase ignoring": 1}
    # Ignoring: E2 twice (flaggable with N = 2), E3 once. Flagged E2 (true) and E4 (obeyed).
    assert (found["evses_ignoring"], found["evses_flaggable"], found["flagged"]) == (2, 1, 2)
    assert (found["precision"], found["recall"]) == (0.5, 1.0)
    assert found["not_flagged"] == []
