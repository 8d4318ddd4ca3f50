"""The demo's simulator view of the clock: it stops at an instant while the product's clock runs on."""

from datetime import UTC, datetime, timedelta

from localrun.demo import StoppableView
from smatch.clock import FrozenClock

T0 = datetime(2025, 5, 6, 17, 7, tzinfo=UTC)


def test_the_view_goes_no_further_than_its_stop_and_catches_up_when_released():
    product = FrozenClock(T0 - timedelta(seconds=10))
    view = StoppableView(product)
    view.stop_at = T0
    assert view.now() == T0 - timedelta(seconds=10)  # before the stop: the same time
    product.advance(25)
    assert view.now() == T0  # past it: stands at the stop
    view.stop_at = None
    assert view.now() == T0 + timedelta(seconds=15)  # released: the product's time again
