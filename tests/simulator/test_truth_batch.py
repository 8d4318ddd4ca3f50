"""Ground truth queries and batch mode (activations, fault knobs, CSV output)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import batch
from simulator.__main__ import main
from simulator.config import Behaviour, Faults, Outage, SimConfig
from simulator.physics import Fleet
from simulator.truth import Truth
from tests.simulator.conftest import START, population

S_COLUMNS = ["session_id", "evse_uid", "timestamp", "kwh", "current_l1_a", "current_l2_a", "current_l3_a",
             "station_id"]


@pytest.fixture(scope="module")
def day_run():
    cfg = SimConfig(points=30, seed=11, start=START, duration_s=4 * 3600)
    fleet = Fleet(cfg)
    fleet.step_until(cfg.duration_s)
    return fleet, fleet.truth(), fleet.drain_states()


def test_truth_window_by_hand():
    # Point 0: 2 kW-steps... in deci-amp-phases: +100 at t=10 (2.3 kW), -100 at t=20. Point 1: +50 from t=15.
    truth = Truth(START, 2, np.array([10, 15, 20]), np.array([0, 1, 0]), np.array([100, 50, -100]))
    p = truth.power_kw(0, 30)
    assert p[9] == 0 and p[10] == pytest.approx(2.3) and p[15] == pytest.approx(3.45) and p[25] == pytest.approx(1.15)
    # 2.3 kW for 10 s + 1.15 kW for 15 s (t=15..30)
    assert truth.energy_kwh(0, 30) == pytest.approx((2.3 * 10 + 1.15 * 15) / 3600)
    assert truth.energy_kwh(0, 30, points=[1]) == pytest.approx(1.15 * 15 / 3600)
    assert truth.energy_kwh(START + timedelta(seconds=12), START + timedelta(seconds=18)) == pytest.approx(
        (2.3 * 6 + 1.15 * 3) / 3600)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 4 * 3600 - 2), st.integers(1, 3600))
def test_energy_is_the_integral_of_power(day_run, t0, length):
    _, truth, _ = day_run
    t1 = min(t0 + length, 4 * 3600)
    assert truth.energy_kwh(t0, t1) == pytest.approx(truth.power_kw(t0, t1).sum() / 3600, rel=1e-9, abs=1e-9)


def test_session_kwh_in_states_matches_truth(day_run):
    fleet, truth, states = day_run
    # Sessions arriving during the run start at 0 kWh: their last state's kwh is their true energy.
    checked = 0
    for sess in np.unique(states.session):
        if fleet.pop.arrival_s[sess] == 0:
            continue
        rows = states.session == sess
        point, t_first, t_last = fleet.pop.point[sess], states.t_s[rows][0], states.t_s[rows][-1]
        assert states.kwh[rows][-1] == pytest.approx(truth.energy_kwh(int(t_first), int(t_last), [point]))
        checked += 1
    assert checked >= 3


def test_meter_energy_is_truth_plus_idle_per_station(day_run):
    fleet, truth, _ = day_run
    meters = truth.meter_energy(0, 3600, 900)
    assert len(meters) == 4 * fleet.config.n_stations
    first = meters[meters.interval_start == meters.interval_start.min()]
    expected = truth.energy_kwh_by_point(0, 900).reshape(-1, 2).sum(axis=1) + 4.5 * 900 / 3600 / 1000
    assert np.allclose(first.energy_kwh.to_numpy(), expected)


def test_truth_memory_per_change_point(day_run):
    _, truth, _ = day_run
    assert truth.nbytes == 12 * truth.n_changes


def test_activation_caps_sessions_above_8_a_from_signal_plus_delay():
    cfg = SimConfig(points=40, seed=3, start=START, duration_s=3 * 3600)
    sig, clear = START + timedelta(seconds=3600), START + timedelta(seconds=3600 + 600)
    res = batch.run(cfg, [(sig, clear)], response_delay_s=20, counterfactual=True)
    free, capped = res.baseline.power_kw_by_point(3630), res.truth.power_kw_by_point(3630)
    three_phase_8a_kw = 8 * 3 * 230 / 1000
    assert res.activations.loc[0, "sessions_capped_true"] > 0
    assert (free > three_phase_8a_kw).any()
    assert (capped <= three_phase_8a_kw + 1e-9).all()  # nobody above 8 A, whatever their phases
    assert (capped <= free + 1e-9).all()
    assert res.activations.loc[0, "shed_true_kwh"] > 0
    # Before the signal both runs are identical.
    assert np.allclose(res.truth.power_kw(0, 3600), res.baseline.power_kw(0, 3600))


def test_activation_response_delay_is_applied():
    cfg = SimConfig(points=20, seed=3, start=START, duration_s=2 * 3600)
    sig, clear = START + timedelta(seconds=1800), START + timedelta(seconds=2400)
    res = batch.run(cfg, [(sig, clear)], response_delay_s=20, counterfactual=True)
    assert res.truth.power_kw(1800, 1819).sum() == pytest.approx(res.baseline.power_kw(1800, 1819).sum())
    assert res.truth.power_kw(1821, 2399).sum() < res.baseline.power_kw(1821, 2399).sum()


def test_states_frame_has_the_analysts_columns_and_aware_timestamps():
    cfg = SimConfig(points=10, seed=2, start=START, duration_s=1800)
    states = batch.run(cfg).states
    assert list(states.columns[:8]) == S_COLUMNS
    assert str(states.timestamp.dt.tz) == "UTC"
    one_phase = states[(states.current_l1_a > 0) & states.current_l2_a.eq(0)]
    assert len(one_phase) and (one_phase.current_l3_a == 0).all()
    three = states[states.current_l2_a > 0]
    assert len(three) and (three.current_l1_a == three.current_l3_a).all()


def test_drop_knob_drops_roughly_that_share():
    cfg = SimConfig(points=30, seed=2, start=START, duration_s=3600)
    full = batch.run(cfg).states
    dropped = batch.run(replace(cfg, faults=Faults(drop_state_share=0.3))).states
    assert 0.6 < len(dropped) / len(full) < 0.8


def test_outage_removes_states_of_that_group_during_the_window():
    cfg = SimConfig(points=30, seed=2, start=START, duration_s=3600,
                    faults=Faults(outages=(Outage(0, 10, 600, 1800),)))
    states = batch.run(cfg).states
    t = (states.timestamp - pd.Timestamp(START)).dt.total_seconds()
    point = states.evse_uid.str.slice(4, 9).astype(int) * 2 + states.evse_uid.str.slice(-1).astype(int) - 1
    inside = (point < 10) & (t >= 600) & (t < 1800)
    assert not inside.any()
    assert ((point < 10) & (t >= 1800)).any()  # they come back


def test_duplicates_and_out_of_order_delivery():
    cfg = SimConfig(points=30, seed=2, start=START, duration_s=3600,
                    faults=Faults(duplicate_state_share=0.1, out_of_order_share=0.1))
    states = batch.run(cfg).states
    assert states.duplicated(["session_id", "timestamp"]).sum() > 0
    assert not states.timestamp.is_monotonic_increasing


def test_overlapping_activations_are_refused():
    cfg = SimConfig(points=4, seed=1, start=START, duration_s=3600)
    a = (START + timedelta(seconds=100), START + timedelta(seconds=900))
    b = (START + timedelta(seconds=800), START + timedelta(seconds=1200))
    with pytest.raises(ValueError, match="overlap"):
        batch.run(cfg, [a, b])


def test_random_activations_end_on_isp_boundaries():
    cfg = SimConfig(points=4, seed=1, start=START)
    acts = batch.random_activations(cfg, 10)
    assert len(acts) == 10
    for sig, clear in acts:
        assert clear.minute % 15 == 0 and clear.second == 0
        assert timedelta(minutes=3) <= clear - sig <= timedelta(minutes=18)


def test_cli_batch_writes_the_csvs(tmp_path):
    assert main(["batch", "--points", "10", "--seed", "1", "--duration-s", "7200", "--activations", "2",
                 "--out", str(tmp_path)]) == 0
    s = pd.read_csv(tmp_path / "S.csv")
    assert list(s.columns) == S_COLUMNS and len(s) > 0
    a = pd.read_csv(tmp_path / "A.csv")
    assert list(a.columns) == ["activation_id", "t_signal", "t_clear"] and len(a) == 2
    m = pd.read_csv(tmp_path / "meters.csv")
    assert len(m) == 8 * 5 and (m.energy_kwh >= 4.5 * 0.25 / 1000 - 1e-12).all()


@pytest.mark.parametrize(("profile", "l1", "l2"), [
    ("extension", [16.0, 16.0], [16.0, 16.0]),
    ("standard", [None, None], [None, None]),
    ("power-only", [None, None], [None, None]),
    ("current-average", [None, 16.0], [None, 16.0]),  # first state: no period yet; then 0.92 kWh / 300 s
])
def test_batch_states_follow_the_realism_profile(small_config, profile, l1, l2):
    """A 3-phase 32 A EV alone at its station draws 16 A; states at 0 and 300 s (no jitter)."""
    cfg = replace(small_config, state_jitter_s=0, behaviour=Behaviour(profile=profile))
    fleet = Fleet(cfg, population({"point": 0}))
    fleet.step_until(301)
    df = batch.states_frame(cfg, fleet, fleet.drain_states()).sort_values("timestamp")
    assert list(df["kwh"].round(6)) == [0.0, 0.92]

    def values(col):
        return [None if np.isnan(v) else v for v in df[col]]
    assert values("current_l1_a") == l1 and values("current_l3_a") == l2


def test_batch_truth_records_ignored_limits_and_evs_that_did_not_resume(small_config):
    """Every EVSE ignores limits in one run, every EV fails to resume in the other. Every session
    truly above 8 A just before the signal got a profile, so it is flagged; nobody outside the
    activation is; a no-resume EV is flagged at the clear (when its limit was lifted)."""
    from simulator.groundtruth import sessions_above

    signal, clear = 600, 1800
    acts = [(START + timedelta(seconds=signal), START + timedelta(seconds=clear))]
    for faults, column in ((Faults(non_responding_share=1.0), "evse_ignored_limit"),
                           (Faults(no_resume_share=1.0), "not_resumed_at")):
        cfg = replace(small_config, points=40, duration_s=3600, faults=faults)
        res = batch.run(cfg, acts, response_delay_s=20)
        sessions = res.sessions.set_index("session_id")
        flagged = set(sessions.index[sessions[column].notna() & (sessions[column] != False)])  # noqa: E712
        above = set(sessions_above(res.fleet, res.truth, signal - 1))
        assert above
        during = set(sessions.index[(sessions["start"] < acts[0][1]) & (sessions["end"].isna()
                                                                        | (sessions["end"] > acts[0][0]))])
        assert flagged <= during
        if column == "evse_ignored_limit":
            assert above <= flagged
        else:
            still_there = {sid for sid in above if pd.isna(sessions.loc[sid, "end"])
                           or sessions.loc[sid, "end"] > acts[0][1]}
            assert still_there <= flagged
            assert (sessions.loc[sorted(flagged), column] == pd.Timestamp(acts[0][1])).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 900), st.floats(0, 3), st.sampled_from([1, 3])),
                min_size=1, max_size=30))
def test_period_average_current_conserves_energy(rows):
    """Invariant: per session, average current x phases x 230 V x elapsed time = the kWh difference
    (0.05 A rounding), and a session's first state has no average."""
    from simulator.physics import StateBatch

    t = {s: 0 for s in range(4)}
    kwh = {s: 0.0 for s in range(4)}
    phases = {}
    cols: dict[str, list] = {k: [] for k in ("t_s", "session", "kwh", "phases")}
    for sess, dt, d_kwh, ph in rows:
        t[sess] += dt
        kwh[sess] += d_kwh
        phases.setdefault(sess, ph)
        for k, v in (("t_s", t[sess]), ("session", sess), ("kwh", kwh[sess]), ("phases", phases[sess])):
            cols[k].append(v)
    n = len(rows)
    b = StateBatch(t_s=np.array(cols["t_s"]), point=np.zeros(n, np.int32), session=np.array(cols["session"]),
                   kwh=np.array(cols["kwh"]), current_da=np.zeros(n, np.int32), phases=np.array(cols["phases"]),
                   completed=np.zeros(n, bool))
    avg = batch.period_average_a(b)
    for s in set(cols["session"]):
        idx = [i for i, x in enumerate(cols["session"]) if x == s]  # already in time order per session
        assert np.isnan(avg[idx[0]])
        for prev, cur in itertools.pairwise(idx):
            hours = (cols["t_s"][cur] - cols["t_s"][prev]) / 3600
            d_kwh = cols["kwh"][cur] - cols["kwh"][prev]
            assert abs(avg[cur] * phases[s] * 0.230 * hours - d_kwh) <= 0.05 * phases[s] * 0.230 * hours + 1e-9
