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


@pytest.fixture(autouse=True)
def _own_rate_limit_counters(settings):
    """Each test counts its own requests: the shared cache (Redis in CI) outlives a test and a run."""
    import copy
    import uuid

    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["KEY_PREFIX"] = f"test-{uuid.uuid4().hex}"
    settings.CACHES = caches


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
    from ocpi.models import OcpiParty, OcpiPartyRole, hash_token

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


# --- callers (the access matrices of test_access.py and test_admin_access.py) ----------------------------

# "basic": an analyst's password sent as HTTP Basic (the API takes none); "staff": a staff login in no group.
CALLERS = ["none", "wrong", "revoked", "pending", "brp", "other_brp", "cpo", "other_cpo", "basic", "analyst",
           "operator", "superuser", "staff"]
REVOKED_BRP_TOKEN, REVOKED_CPO_TOKEN, PENDING_TOKEN = "revoked-brp-token", "revoked-cpo-token", "pending-token-a"


@pytest.fixture
def world(brp, other_brp, cpo, other_cpo, analyst, operator, settled):
    """Objects of every owner, and the credentials of every caller."""
    from django.contrib.auth.models import User

    from flexibility.models import Brp, Signal
    from ocpi.models import ChargingProfileCall, OcpiParty, Session, hash_token

    revoked = Brp.objects.create(name="Former supplier", is_active=False, token_hash=hash_token(REVOKED_BRP_TOKEN))
    _party("Revoked CPO", "REV", REVOKED_CPO_TOKEN, status=OcpiParty.Status.REVOKED)
    _party("Pending CPO", "PEN", PENDING_TOKEN, status=OcpiParty.Status.PENDING)
    superuser = User.objects.create_superuser("sam-super", password="pw-sam-super")
    staff = User.objects.create_user("stan-staff", password="pw-stan-staff", is_staff=True)
    signal = Signal.objects.create(brp=brp, external_id="mine", direction="reduce_consumption")
    session = Session.objects.create(
        party=cpo, country_code="NL", ocpi_party_id="CPO", session_id="S1", location_id="L", evse_uid="E",
        connector_id="1", status="ACTIVE", kwh=1.0, start_date_time=signal.received_at,
        last_updated=signal.received_at)
    call = ChargingProfileCall.objects.create(session=session, kind="SET")
    return {"brp": brp, "other_brp": other_brp, "revoked_brp": revoked, "signal": signal, "session": session,
            "call": call, "result": settled[brp.pk], "run": settled[brp.pk].run,
            "users": {"analyst": analyst, "operator": operator, "superuser": superuser, "staff": staff}}


def as_caller(client, world, caller: str, door: str):
    """The client, authenticated as `caller` the way that caller would knock at `door` (rest / ocpi / admin)."""
    import base64

    b64 = (lambda t: base64.b64encode(t.encode()).decode()) if door == "ocpi" else (lambda t: t)
    tokens = {"wrong": "no-such-token", "revoked": REVOKED_CPO_TOKEN if door == "ocpi" else REVOKED_BRP_TOKEN,
              "pending": PENDING_TOKEN, "brp": world["brp"].api_token, "other_brp": world["other_brp"].api_token,
              "cpo": CPO_TOKEN, "other_cpo": "trust-other-cpo-token-c-987"}
    if caller in tokens:
        client.defaults["HTTP_AUTHORIZATION"] = f"Token {b64(tokens[caller])}"
    elif caller == "basic":
        user = world["users"]["analyst"]
        client.defaults["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(
            f"{user.username}:pw-{user.username}".encode()).decode()
    elif caller in world["users"]:
        client.force_login(world["users"][caller])
    return client


@pytest.fixture
def client_factory():
    from django.test import Client

    return Client


def _json(body):
    import json

    return json.dumps(body) if body is not None else ""


def _state() -> tuple:
    """What a refused request must not change."""
    from flexibility.models import Brp, Decision, Signal
    from ocpi.models import ChargingProfileCall, OcpiParty, Session
    from settlement.models import SettlementRun

    return (list(Signal.objects.values_list("id", "status")), Decision.objects.count(),
            list(Session.objects.values_list("id", "kwh", "last_updated")), SettlementRun.objects.count(),
            list(ChargingProfileCall.objects.values_list("id", "result")),
            list(OcpiParty.objects.values_list("id", "status", "token_ours_hash", "token_theirs")),
            list(Brp.objects.values_list("id", "token_hash", "is_active")))
