"""Trust tests: bad input at every door (fuzzing) and the access matrix."""

from __future__ import annotations

import pytest

from . import tally


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    rows = tally.lines()
    if not rows:
        return
    terminalreporter.section("trust: cases tried per door")
    for row in rows:
        terminalreporter.write_line(row)
    path = tally.write()
    terminalreporter.write_line(f"(written to {path})")


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """Basic auth checks a password per request: PBKDF2 would make each fuzz case cost ~0.3 s."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def settled(brp, other_brp):
    """A finished settlement run with one activation result for each BRP: {brp.pk: result}."""
    from datetime import timedelta

    from settlement.models import ActivationResult, IspResult, SettlementRun
    from tests.conftest import T0

    run = SettlementRun.objects.create(period_from=T0 - timedelta(days=1), period_to=T0,
                                       status=SettlementRun.Status.DONE)
    results = {}
    for supplier in (brp, other_brp):
        result = ActivationResult.objects.create(
            run=run, brp=supplier, t_signal=T0 - timedelta(hours=2), t_clear=T0 - timedelta(hours=2, minutes=-10),
            p_signal_kw=100.0, p_clear_kw=98.0, baseline_kwh=16.5, delivered_kwh=10.0, shed_kwh=6.5, sessions=12,
            value_eur=1.95, data_quality="good")
        IspResult.objects.create(activation_result=result, isp_start=T0 - timedelta(hours=2), baseline_kwh=16.5,
                                 delivered_kwh=10.0, shed_kwh=6.5, price_eur_per_mwh=300.0, value_eur=1.95)
        results[supplier.pk] = result
    return results
