"""Accuracy measures (bench.settlement_accuracy_measures) on hand-computed cases, and the simulator's redelivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.settlement_accuracy_measures import (
    energy_errors,
    hourly_activations,
    isp_energy_kwh,
    markdown_table,
    per_second_to_bins,
    shed_errors,
)
from simulator import batch
from simulator.config import Faults, Outage, SimConfig
from tests.settlement.helpers import at


def test_energy_errors_hand_computed():
    true = pd.Series([100.0, 200.0, 50.0], index=[at("00:00:00"), at("00:15:00"), at("00:30:00")])
    est = pd.Series([101.0, 198.0], index=[at("00:00:00"), at("00:15:00")])  # 00:30 missing: counts as 0
    e = energy_errors(true, est)
    # +1 %, -1 %, -100 %: max 100, mean 34; total (299 - 350) / 350 = -14.571 %.
    assert e.n == 3
    assert e.max_abs_pct == pytest.approx(100.0)
    assert e.mean_abs_pct == pytest.approx(34.0)
    assert e.total_pct == pytest.approx(-51 / 350 * 100)
    assert e.worst_at == at("00:30:00")
    with pytest.raises(ValueError, match="positive"):
        energy_errors(pd.Series([0.0]), pd.Series([0.0]))


def test_shed_errors_hand_computed():
    # diff = +2, -2, +3 (the NaN estimate is left out): aggregate 3 / 60 = +5 %; bias 1 kWh; MAE 7/3 kWh
    # = 11.667 % of the mean true shed 20; relative errors 20 %, 10 %, 10 %: median 10 %.
    s = shed_errors([10.0, 20.0, 30.0, 5.0], [12.0, 18.0, 33.0, np.nan])
    assert (s.n, s.true_total_kwh, s.est_total_kwh) == (3, 60.0, 63.0)
    assert s.aggregate_pct == pytest.approx(5.0)
    assert s.bias_kwh == pytest.approx(1.0)
    assert s.mae_kwh == pytest.approx(7 / 3)
    assert s.mae_pct == pytest.approx(7 / 3 / 20 * 100)
    assert s.median_abs_pct == pytest.approx(10.0)
    with pytest.raises(ValueError, match="one value per activation"):
        shed_errors([1.0], [1.0, 2.0])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.5, 500.0), min_size=1, max_size=30), st.floats(-0.5, 0.5))
def test_a_uniform_relative_error_is_reported_as_such(true, eps):
    # est = true x (1 + eps): every error measure in % is |eps| x 100, the aggregate and bias keep the sign.
    s = shed_errors(true, [t * (1 + eps) for t in true])
    assert s.aggregate_pct == pytest.approx(eps * 100, abs=1e-9)
    assert s.median_abs_pct == pytest.approx(abs(eps) * 100, abs=1e-9)
    if abs(eps) > 1e-9:  # below that, rounding of t x (1 + eps) decides the sign
        assert np.sign(s.bias_kwh) == np.sign(eps)


def test_isp_energy_sums_bins_per_isp():
    bins = pd.Series(1.0, index=pd.date_range(at("00:00:00"), periods=30, freq="1min"))
    assert isp_energy_kwh(bins).tolist() == [15.0, 15.0]
    straddling = pd.Series(1.0, index=pd.date_range(at("00:00:00"), periods=5, freq="7min"))
    with pytest.raises(ValueError, match="straddle"):
        isp_energy_kwh(straddling)


def test_per_second_to_bins():
    power = np.r_[np.full(60, 10.0), np.full(30, 0.0), np.full(30, 20.0), np.full(10, 99.0)]
    bins = per_second_to_bins(power, at("01:00:00"))
    # Bin 01:00 = 10 kW; bin 01:01 = (30 x 0 + 30 x 20) / 60 = 10 kW; the 10 s tail is not a full bin.
    assert bins.tolist() == [10.0, 10.0]
    assert bins.index[1] == at("01:01:00")


def test_hourly_activations_clear_on_boundaries_inside_their_hour():
    start = datetime(2025, 5, 6, tzinfo=UTC)
    acts = hourly_activations(start, range(1, 24), seed=3)
    assert acts == hourly_activations(start, range(1, 24), seed=3)  # seeded: reproducible
    assert acts != hourly_activations(start, range(1, 24), seed=4)
    for h, (signal, clear) in zip(range(1, 24), acts, strict=True):
        assert clear - start - timedelta(hours=h) in {timedelta(minutes=m) for m in (15, 30, 45)}
        assert timedelta(seconds=120) <= clear - signal <= timedelta(seconds=900)
        assert signal >= start + timedelta(hours=h)


def test_markdown_table():
    text = markdown_table([{"a": "x", "b": 1.234}], [("a", "A", ""), ("b", "B", ".1f")])
    assert text.splitlines() == ["| A | B |", "|---|---:|", "| x | 1.2 |"]


@pytest.fixture(scope="module")
def small_run():
    cfg = SimConfig(points=40, seed=5, duration_s=4 * 3600)
    return batch.run(cfg, [])


def test_redeliver_without_faults_is_the_delivered_frame(small_run):
    pd.testing.assert_frame_equal(batch.redeliver(small_run, Faults()), small_run.states)


def test_redeliver_drops_and_outages(small_run):
    n = len(small_run.states)
    dropped = batch.redeliver(small_run, Faults(drop_state_share=0.05))
    assert 0.9 * n < len(dropped) < n
    start = pd.Timestamp(small_run.fleet.config.start)
    outage = batch.redeliver(small_run, Faults(outages=(Outage(0, 4, 3600, 5400),)))
    lost = small_run.states[small_run.states["evse_uid"].isin([batch.evse_uid(p) for p in range(4)])
                            & (small_run.states["timestamp"] >= start + pd.Timedelta(seconds=3600))
                            & (small_run.states["timestamp"] < start + pd.Timedelta(seconds=5400))]
    assert len(lost) > 0
    assert len(outage) == n - len(lost)
