"""Flexibility forecast, pure part: the window rule, erasable power from states, profile, correction."""

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from flexibility import forecast
from flexibility.forecast import ForecastErrorCode, ForecastRefused

MONDAY = datetime(2026, 11, 2, tzinfo=UTC)
NAIVE = datetime(2026, 11, 2)


@pytest.mark.parametrize(("start", "end", "code"), [
    (MONDAY, MONDAY - timedelta(minutes=15), ForecastErrorCode.WINDOW_BACKWARDS),
    (MONDAY, MONDAY, ForecastErrorCode.WINDOW_BACKWARDS),
    (MONDAY, MONDAY + timedelta(days=7, minutes=15), ForecastErrorCode.WINDOW_TOO_LONG),
    (MONDAY + timedelta(minutes=5), MONDAY + timedelta(hours=1), ForecastErrorCode.WINDOW_NOT_ON_ISP),
    (MONDAY, MONDAY + timedelta(hours=1, seconds=1), ForecastErrorCode.WINDOW_NOT_ON_ISP),
    (NAIVE, NAIVE + timedelta(hours=1), ForecastErrorCode.WINDOW_UNREADABLE),
    # found by tests/trust/test_fuzz_api.py (was a 500): a zone that puts the time outside years 1..9999 in UTC
    (datetime(1, 1, 1, 0, 0, 1, tzinfo=timezone(timedelta(minutes=1))), datetime(1, 1, 1, 1, 4, tzinfo=UTC),
     ForecastErrorCode.WINDOW_UNREADABLE),
    (datetime(9999, 12, 31, 23, 30, tzinfo=timezone(-timedelta(hours=1))), datetime(9999, 12, 31, 23, 45, tzinfo=UTC),
     ForecastErrorCode.WINDOW_UNREADABLE),
])
def test_bad_windows_are_refused_with_the_rule(start, end, code):
    with pytest.raises(ForecastRefused) as refused:
        forecast.check_window(start, end)
    assert refused.value.code == code


def test_a_week_is_672_isps():
    assert len(forecast.check_window(MONDAY, MONDAY + timedelta(days=7))) == 672


def test_erasable_power_takes_each_session_at_its_last_state_of_the_isp():
    states = pd.DataFrame({
        "session": [1, 1, 2, 3],
        "timestamp": pd.to_datetime(["2026-11-02 00:01", "2026-11-02 00:14", "2026-11-02 00:05", "2026-11-02 00:20"],
                                    utc=True),
        "current_a": [16.0, 10.0, 32.0, 20.0],
        "phases": [3, 3, np.nan, 1],
        "active": [True, True, True, False],
    })
    series = forecast.erasable_series(states, pd.date_range(MONDAY, periods=3, freq="15min"))
    # 00:15: session 1 at 10 A on 3 phases (2 x 3 x 0.23 = 1.38) + session 2 at 32 A, phases unknown -> 1
    # (24 x 0.23 = 5.52); 00:30: session 3 is no longer active: nothing.
    assert series.tolist() == pytest.approx([0.0, 6.9, 0.0])


def test_profile_pools_neighbouring_slots_by_day_type():
    idx = pd.date_range(MONDAY, periods=96 * 7, freq="15min")
    history = pd.Series(np.where(idx.day_of_week < 5, 100.0, 40.0), index=idx)
    prof = forecast.profile(history)
    assert prof.loc[(0, 40)].tolist() == [100.0, 100.0, 100.0]
    assert prof.loc[(2, 40), "p50"] == 40.0  # Sunday


def test_the_state_now_corrects_the_near_isps_and_fades():
    idx = pd.date_range(MONDAY, periods=96 * 7, freq="15min")
    prof = forecast.profile(pd.Series(100.0, index=idx))
    now = MONDAY + timedelta(days=7, hours=10, minutes=5)  # a Monday, profile 100 kW everywhere
    isps = forecast.check_window(now.replace(minute=0), now.replace(minute=0) + timedelta(days=1))
    out = forecast.predict(prof, isps, now, now_kw=150.0)
    assert out["sheddable_now_kw"].iloc[0] == 150.0 and out["sheddable_now_kw"].iloc[1:].isna().all()
    assert out["p50"].iloc[0] == pytest.approx(150.0)  # horizon 0: the full ratio 1.5
    # 10:15 starts 10 min after now: 100 x (1 + 0.5 x exp(-10/90))
    assert out["p50"].iloc[1] == pytest.approx(100 * (1 + 0.5 * np.exp(-10 / 90)))
    assert out["p50"].iloc[-1] == pytest.approx(100.0, abs=0.01)  # a day ahead: the profile alone
    assert (out["p10"] <= out["p50"]).all() and (out["p50"] <= out["p90"]).all()
