import time
from datetime import UTC, datetime, timedelta

import pytest

from smatch.clock import FrozenClock, ScaledClock, parse_clock, real_seconds_until, set_clock


def test_frozen_clock_advances_only_when_told():
    c = FrozenClock(datetime(2025, 1, 1, tzinfo=UTC))
    assert c.now() == datetime(2025, 1, 1, tzinfo=UTC)
    c.advance(90)
    assert c.now() == datetime(2025, 1, 1, 0, 1, 30, tzinfo=UTC)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        FrozenClock(datetime(2025, 1, 1))


def test_scaled_clock_round_trips_through_its_spec():
    start = datetime(2025, 5, 6, 6, 0, tzinfo=UTC)
    c = ScaledClock(start, time.time() - 10, 60.0)
    again = parse_clock(c.spec())
    assert abs((again.now() - c.now()).total_seconds()) < 1
    assert timedelta(minutes=9) < c.now() - start < timedelta(minutes=11)


def test_real_seconds_until_divides_by_speed():
    start = datetime(2025, 5, 6, 6, 0, tzinfo=UTC)
    set_clock(ScaledClock(start, time.time(), 100.0))
    try:
        assert 5.5 < real_seconds_until(start + timedelta(minutes=10)) <= 6.0
        assert real_seconds_until(start - timedelta(hours=1)) == 0.0
    finally:
        set_clock(None)


@pytest.mark.parametrize("spec", ["", "wall", "scaled:2025-01-01T00:00:00+00:00|x|1", "scaled:nope"])
def test_bad_clock_spec_fails_loudly(spec):
    with pytest.raises(ValueError, match="SMATCH_CLOCK"):
        parse_clock(spec)
