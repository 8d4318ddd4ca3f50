"""Physics: station sharing, phases, taper, minimum current, profiles, non-responding EVSEs."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from simulator.config import Faults
from simulator.physics import Fleet
from tests.simulator.conftest import population


def test_one_point_drawing_gets_16_a(small_config):
    fleet = Fleet(small_config, population({"point": 0}))
    fleet.step_until(10)
    assert fleet.current_a(0) == 16.0
    assert fleet.current_a(1) == 0.0


def test_two_points_drawing_share_12_5_a_each_and_back_to_16_when_one_leaves(small_config):
    fleet = Fleet(small_config, population({"point": 0}, {"point": 1, "depart_s": 100}))
    fleet.step_until(50)
    assert (fleet.current_a(0), fleet.current_a(1)) == (12.5, 12.5)
    fleet.step_until(150)
    assert (fleet.current_a(0), fleet.current_a(1)) == (16.0, 0.0)


def test_ev_maximum_below_the_station_share_is_respected(small_config):
    fleet = Fleet(small_config, population({"point": 0, "max_da": 100}))  # a 10 A EV
    fleet.step_until(5)
    assert fleet.current_a(0) == 10.0


@pytest.mark.parametrize(("phases", "expected_kw"), [(1, 16 * 230 / 1000), (3, 3 * 16 * 230 / 1000)])
def test_power_counts_the_phases(small_config, phases, expected_kw):
    fleet = Fleet(small_config, population({"point": 0, "phases": phases}))
    fleet.step_until(20)
    assert fleet.truth().power_kw_by_point(10)[0] == pytest.approx(expected_kw)


def test_taper_current_falls_linearly_above_the_taper_soc(small_config):
    # SoC 0.9 with taper from 0.8: (1 - 0.9) / (1 - 0.8) = half of the EV's 32 A = 16 A asked,
    # which is exactly the station share; at SoC 0.95 it asks 8 A.
    fleet = Fleet(small_config, population({"point": 0, "soc0": 0.95, "battery_kwh": 1e6}))
    fleet.step()
    assert fleet.current_a(0) == pytest.approx(8.0, abs=0.1)


def test_taper_reduces_current_over_time_until_full(small_config):
    cfg = replace(small_config, duration_s=20_000)
    fleet = Fleet(cfg, population({"point": 0, "soc0": 0.85, "battery_kwh": 5.0, "phases": 1}))
    seen = []
    for _ in range(6):
        fleet.step_until(fleet.t + 600)
        seen.append(fleet.current_a(0))
    assert all(b <= a for a, b in itertools.pairwise(seen))
    assert seen[0] < 16.0 and seen[-1] < seen[0]


def test_profile_below_6_a_stops_charging(small_config):
    fleet = Fleet(small_config, population({"point": 0}))
    fleet.set_profile(0, 0, [(0, 50)], None)  # 5 A offered: under the IEC minimum
    fleet.step_until(5)
    assert fleet.current_a(0) == 0.0


def test_profile_is_obeyed_then_falls_back_when_its_duration_ends(small_config):
    fleet = Fleet(small_config, population({"point": 0}))
    fleet.step_until(100)
    fleet.set_profile(0, start_s=120, periods=[(0, 80)], end_s=120 + 300)
    fleet.step_until(119)
    assert fleet.current_a(0) == 16.0
    fleet.step_until(121)
    assert fleet.current_a(0) == 8.0
    fleet.step_until(419)
    assert fleet.current_a(0) == 8.0
    fleet.step_until(421)
    assert fleet.current_a(0) == 16.0
    assert 0 not in fleet.profiles


def test_multi_period_profile_and_clear(small_config):
    fleet = Fleet(small_config, population({"point": 0}))
    fleet.set_profile(0, start_s=0, periods=[(0, 80), (60, 100)], end_s=None)
    fleet.step_until(30)
    assert fleet.current_a(0) == 8.0
    fleet.step_until(90)
    assert fleet.current_a(0) == 10.0
    assert fleet.clear_profile(0, effective_s=100)
    fleet.step_until(99)
    assert fleet.current_a(0) == 10.0
    fleet.step_until(101)
    assert fleet.current_a(0) == 16.0


def test_a_late_clear_does_not_postpone_the_profiles_own_end(small_config):
    """A DELETE that takes 20 s to apply must not keep a cap that its duration ends at 60 s."""
    fleet = Fleet(small_config, population({"point": 0}))
    fleet.set_profile(0, start_s=0, periods=[(0, 80)], end_s=60)
    fleet.step_until(50)
    assert fleet.current_a(0) == 8.0
    fleet.clear_profile(0, effective_s=70)
    fleet.step_until(61)
    assert fleet.current_a(0) == 16.0


def test_a_replacing_profile_does_not_extend_the_old_one(small_config):
    fleet = Fleet(small_config, population({"point": 0}))
    fleet.set_profile(0, start_s=0, periods=[(0, 80)], end_s=60)
    fleet.step_until(55)
    fleet.set_profile(0, start_s=100, periods=[(0, 100)], end_s=200, effective_s=75)
    fleet.step_until(61)
    assert fleet.current_a(0) == 16.0  # the old cap ended at 60, the new one starts at 100
    fleet.step_until(101)
    assert fleet.current_a(0) == 10.0


def test_profile_dies_with_its_session(small_config):
    fleet = Fleet(small_config, population({"point": 0, "depart_s": 50}, {"point": 0, "arrival_s": 60}))
    fleet.set_profile(0, 0, [(0, 80)], None)
    fleet.step_until(70)
    assert fleet.current_a(0) == 16.0


def test_non_responding_evse_keeps_its_current(small_config):
    cfg = replace(small_config, faults=Faults(non_responding_share=1.0))
    fleet = Fleet(cfg, population({"point": 0}))
    fleet.set_profile(0, 0, [(0, 80)], None)
    fleet.step_until(10)
    assert fleet.current_a(0) == 16.0


def test_non_responding_share_is_roughly_the_configured_share(small_config):
    cfg = replace(small_config, points=4000, faults=Faults(non_responding_share=0.1))
    share = 1 - Fleet(cfg, population({"point": 0})).responsive.mean()
    assert 0.08 < share < 0.12


def test_states_every_5_minutes_from_each_session_start_not_aligned(small_config):
    cfg = replace(small_config, points=40, duration_s=7200)
    fleet = Fleet(cfg)
    fleet.step_until(cfg.duration_s)
    s = fleet.drain_states()
    phases_mod_300 = set()
    for sess in np.unique(s.session):
        t = s.t_s[(s.session == sess) & ~s.completed]
        gaps = np.diff(t)
        assert ((gaps >= 295) & (gaps <= 305)).all(), gaps
        if fleet.pop.arrival_s[sess] > 0:
            assert t[0] == fleet.pop.arrival_s[sess]  # a state at the start
            phases_mod_300.add(int(t[0]) % 300)
    assert len(phases_mod_300) > 3  # sessions are not aligned on a common grid


def test_end_state_reports_completed_with_zero_current(small_config):
    fleet = Fleet(small_config, population({"point": 0, "depart_s": 700}))
    fleet.step_until(800)
    s = fleet.drain_states()
    assert list(s.t_s) == [0, *s.t_s[1:-1], 700] and s.completed[-1] and not s.completed[:-1].any()
    assert s.current_da[-1] == 0
    # 16 A x 3 phases x 230 V = 11.04 kW, for 700 s
    assert s.kwh[-1] == pytest.approx(11.04 * 700 / 3600)


def test_complete_when_full_ends_session_but_blocks_the_point(small_config):
    fleet = Fleet(small_config, population({"point": 0, "soc0": 0.9999, "complete_when_full": True},
                                           {"point": 1}))
    fleet.step_until(10)
    s = fleet.drain_states()
    assert s.completed[s.session == 0].all()
    assert fleet.status[0] == 2  # plugged but done: the neighbour still gets the full 16 A
    assert fleet.current_a(1) == 16.0


def test_same_seed_same_run_other_seed_differs(small_config):
    def run(seed):
        cfg = replace(small_config, points=30, seed=seed, duration_s=1800)
        f = Fleet(cfg)
        f.step_until(cfg.duration_s)
        return f.truth(), f.drain_states()
    (t1, s1), (t2, s2), (t3, _) = run(5), run(5), run(6)
    assert np.array_equal(t1.delta_dap, t2.delta_dap) and np.array_equal(s1.kwh, s2.kwh)
    assert not np.array_equal(t1.t_s, t3.t_s)
