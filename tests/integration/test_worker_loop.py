"""The steering loop on a real worker process, Redis broker and PostgreSQL (no CPO traffic)."""

from datetime import timedelta

import pytest

from flexibility import services
from flexibility.models import Activation, Brp, Signal
from smatch import clock

from .conftest import wait_for

pytestmark = pytest.mark.services


def test_auto_policy_relays_and_the_worker_restores_at_the_end(celery_worker_process):
    auto, _ = services.create_brp("auto BRP", Brp.Policy.AUTO)
    end = clock.now() + timedelta(seconds=4)
    signal = services.receive_signal(auto, "loop-1", "reduce_consumption", end_time=end).signal
    activation = wait_for(lambda: Activation.objects.filter(signal=signal).first(), 20, "the policy relay")
    assert activation.ends_at <= end
    wait_for(
        lambda: Activation.objects.filter(pk=activation.pk, status=Activation.Status.RESTORED).exists(),
        30,
        "the restore at the end",
    )
    signal.refresh_from_db()
    assert signal.status == Signal.Status.RESTORED
    restored_at = Activation.objects.get(pk=activation.pk).restored_at
    assert end <= restored_at < end + timedelta(seconds=10)
