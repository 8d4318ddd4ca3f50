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


# --- OCPI parties ---------------------------------------------------------------------------------

CPO_TOKEN = "trust-cpo-token-c-0123456789"
OTHER_CPO_TOKEN = "trust-other-cpo-token-c-987"


def _party(name: str, party_id: str, token: str, status="REGISTERED"):
    from ocpi_client.models import OcpiParty, OcpiPartyRole, hash_token

    party = OcpiParty.objects.create(
        name=name, country_code="NL", party_id=party_id, role="CPO", status=status,
        token_ours_hash=hash_token(token), token_theirs=f"ours-for-{party_id}",
        versions_url="http://127.0.0.1:9/versions",  # nothing listens on the discard port: fails fast
        endpoints=[{"identifier": "chargingprofiles", "role": "RECEIVER", "url": "http://127.0.0.1:9/cp/"}])
    # The identity its credentials exchange would have given it (held while not revoked).
    OcpiPartyRole.objects.create(party=party, country_code="NL", ocpi_party_id=party_id, role="CPO",
                                 active=status != "REVOKED")
    return party


@pytest.fixture
def cpo(db, clock):
    """The CPO platform pushing sessions to us (NL*CPO); its token is `cpo.token`."""
    party = _party("Trust CPO", "CPO", CPO_TOKEN)
    party.token = CPO_TOKEN
    return party


@pytest.fixture
def other_cpo(db, clock):
    """Another CPO (NL*OTH): must never read or change the first one's sessions."""
    party = _party("Other CPO", "OTH", OTHER_CPO_TOKEN)
    party.token = OTHER_CPO_TOKEN
    return party


class Ocpi:
    """Django test client speaking OCPI: base64 token, raw or JSON body, parsed envelope."""

    def __init__(self, client) -> None:
        self.client = client

    def __call__(self, method: str, path: str, body=None, *, token: str | None = CPO_TOKEN, raw: bytes | None = None):
        import base64
        import json

        extra = {"HTTP_AUTHORIZATION": f"Token {base64.b64encode(token.encode()).decode()}"} if token else {}
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        response = self.client.generic(method, f"/ocpi/{path}", data=data, content_type="application/json", **extra)
        response.envelope = json.loads(response.content)
        return response


@pytest.fixture
def ocpi(client) -> Ocpi:
    return Ocpi(client)
