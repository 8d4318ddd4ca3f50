"""bench/realism.py's figures: `figures` on a hand-computed case, and one end-to-end seed against the
targets of issue #10 (all seeds: `python bench/realism.py`, docs/realism.md)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

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
    # E5 ignored two caps, but its EV drew under the cap's level in one: not flaggable (one binding
    # ignore), yet counted in recall_any, where it is missed.
    run.caps += [CapSeen("S7", "E5", "no_data", ignored=True, phases=3, bound=False),
                 CapSeen("S8", "E5", "not_responded", ignored=True, phases=3)]
    found = figures(run, failures_n=2)
    assert (found["evses_flaggable"], found["evses_flaggable_any"]) == (1, 2)
    assert (found["recall"], found["recall_any"]) == (1.0, 0.5)


# --- the figures themselves, end to end --------------------------------------------------------------
# One seed of bench/realism.py (a child pytest on its own database `<DATABASE_URL>_figures`, ~4 min).
# The targets met in docs/realism.md must stay met: a change that loses one fails here. Seed 1 is the
# hard one: a one-phase EV ignoring the caps while it begins to taper (recall 0.75-0.80 there before
# the flat-draw carry of flexibility/delivery.py).

SEED = 1
MAX_NO_DATA_SHARE = 0.2  # verdicts right must not be bought with no data (seeds 1-5: 7-17 % of caps)


@pytest.fixture(scope="module")
def seed_figures(real_services) -> dict:
    from bench.realism import run_seed

    url = urlsplit(os.environ["DATABASE_URL"])  # real_services: set, and PostgreSQL
    return run_seed(SEED, 5, db=urlunsplit(url._replace(path=url.path + "_figures")), broker=real_services["broker"])


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.parametrize(("key", "met"), [
    ("capped_share", lambda v: v >= 0.98),
    ("shed_error", lambda v: v <= 0.15),
    ("verdicts_right", lambda v: v >= 0.95),
    ("precision", lambda v: v >= 0.95),
    ("recall", lambda v: v >= 0.9),
], ids=["capped", "shed", "verdicts", "precision", "recall"])
def test_standard_profile_figures_meet_their_targets(seed_figures, key, met):
    assert met(seed_figures[key]), {k: v for k, v in seed_figures.items() if k != "skipped"}


@pytest.mark.services
@pytest.mark.slow
def test_standard_profile_verdicts_are_not_bought_with_no_data(seed_figures):
    caps = seed_figures["verdicts"] + seed_figures["no_data"]
    assert caps and seed_figures["no_data"] <= MAX_NO_DATA_SHARE * caps, seed_figures["no_data_by_truth"]
