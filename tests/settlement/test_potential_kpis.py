"""Erasable power by time of day, meter reconciliation and driver-impact KPIs, hand-computed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from settlement.core.kpis import driver_impact
from settlement.core.meters import reconcile_meters
from settlement.core.potential import erasable_by_time_of_day
from settlement.core.reconstruction import reconstruct
from tests.settlement.helpers import at, frame, sampled_session


def test_erasable_power_by_time_of_day():
    # One 3-phase session at 16 A from 00:00 to 01:00 and one 1-phase at 6 A (below 8 A: nothing to erase).
    rows = sampled_session("s", "e", at("00:00:00"), at("01:00:00"), lambda t: 16.0)
    rows += sampled_session("w", "f", at("00:00:00"), at("01:00:00"), lambda t: 6.0, phases=1)
    table = erasable_by_time_of_day(reconstruct(frame(rows)))
    # Erasable = 3 x (16 - 8) A x 0.23 = 5.52 kW in each of the four quarter hours.
    assert table.index.tolist() == ["00:00", "00:15", "00:30", "00:45"]
    np.testing.assert_allclose(table["erasable_kw_mean"], 5.52, rtol=1e-9)


def test_meter_reconciliation_hand_computed():
    # 11.04 kW for 15 minutes = 2.76 kWh; the meter adds 4.5 W idle x 0.25 h = 1.125 Wh.
    rec = reconstruct(frame(sampled_session("s", "e", at("10:00:00"), at("10:15:00"), lambda t: 16.0)))
    meters = pd.DataFrame({"station_id": ["e"], "interval_start": [at("10:00:00")], "energy_kwh": [2.761125]})
    report = reconcile_meters(rec, meters)
    assert report.intervals["reconstructed_kwh"].iloc[0] == pytest.approx(2.76)
    assert report.error_before == pytest.approx(-0.001125 / 2.761125)
    assert report.error_after == pytest.approx(0.0, abs=1e-12)


def test_driver_impact_kpis_hand_computed():
    sessions = pd.DataFrame({
        "session_id": ["a", "b", "c", "d"],
        "start": [at("10:00:00")] * 4,
        "end": [at("11:00:00"), at("11:00:00"), at("12:00:00"), pd.NaT],
        "end_current_a": [12.0, 0.0, 10.0, 16.0],
    })
    curtailments = pd.DataFrame({"session_id": ["a", "a", "b"],
                                 "start": [at("10:10:00"), at("10:40:00"), at("10:10:00")],
                                 "end": [at("10:17:00"), at("10:45:00"), at("10:20:00")]})
    activations = pd.DataFrame({"activation_id": ["x", "y"], "t_signal": [at("10:10:00"), at("10:40:00")],
                                "t_clear": [at("10:20:00"), at("10:45:00")]})
    kpis = driver_impact(sessions, curtailments, activations)
    # Throttled: a (7 + 5 = 12 min) and b (10 min): mean 11 min; never throttled: c, d -> 2/4.
    assert kpis["share_never_throttled"] == 0.5
    assert kpis["mean_throttled_minutes"] == 11.0
    # Activations 10 and 5 minutes: mean 7.5.
    assert kpis["mean_activation_minutes"] == 7.5
    # Hot plug-outs: throttled a (12 A at the end) of a, b -> 1/2; unthrottled ended: c (10 A) -> 1/1 (d still on).
    assert kpis["hot_plugout_rate_throttled"] == 0.5
    assert kpis["hot_plugout_rate_unthrottled"] == 1.0
