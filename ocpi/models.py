"""OCPI 2.2.1 link in the SCSP role: connected parties, the sessions they push, and our profile calls.

Tokens: `token_theirs` is the credentials token WE send to them (we must present it, so it is kept);
the token THEY send to us is only kept as a sha256 hash (`token_ours_hash`).
"""

from __future__ import annotations

import hashlib
import uuid

from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper

from smatch import clock

# Where a state's current came from (SessionState.current_source, Session.current_source).
CURRENT_MEASURED = "measured"  # per-phase currents (x_ extension) or a CURRENT dimension (period average)
CURRENT_FROM_POWER = "power"  # a POWER dimension converted at 230 V per phase
CURRENT_FROM_KWH = "kwh"  # the average power between two states, from their kWh difference
CURRENT_ASSUMED = "assumed"  # converted with the assumed phase count (phases unknown)
CURRENT_UNKNOWN = ""
CURRENT_SOURCES = (
    (CURRENT_MEASURED, "measured"), (CURRENT_FROM_POWER, "from POWER"), (CURRENT_FROM_KWH, "from kWh"),
    (CURRENT_ASSUMED, "assumed phases"), (CURRENT_UNKNOWN, "unknown"),
)
# Where a session's phase count came from (Session.phases_source).
PHASES_REPORTED = "reported"  # x_phases / x_phase_currents_a extension
PHASES_POWER_CURRENT = "power_current"  # a POWER / CURRENT pair in the same charging period
PHASES_CONNECTOR = "connector"  # the connector's power_type from the Locations module
# At least this many: the session drew more power than fewer phases allow at the connector's
# max_amperage (32 A when unknown). Three is then certain; fewer is a lower bound.
PHASES_POWER = "power"
PHASES_UNKNOWN = ""
PHASES_SOURCES = (
    (PHASES_REPORTED, "reported"), (PHASES_POWER_CURRENT, "POWER/CURRENT pair"),
    (PHASES_CONNECTOR, "connector"), (PHASES_POWER, "at least, from the power drawn"), (PHASES_UNKNOWN, "unknown"),
)


def hash_token(token: str) -> str:
    """sha256 hex of a credentials token: the only form in which we keep tokens we issue."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class OcpiParty(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING"
        REGISTERED = "REGISTERED"
        REVOKED = "REVOKED"

    class TokenEncoding(models.TextChoices):
        BASE64 = "base64", "base64 (OCPI 2.2.1)"
        RAW = "raw", "raw (some 2.2.x platforms)"

    name = models.CharField(max_length=100)
    country_code = models.CharField(max_length=2, blank=True)
    party_id = models.CharField(max_length=3, blank=True)
    role = models.CharField(max_length=10, default="CPO")
    versions_url = models.URLField(max_length=255, blank=True)
    version = models.CharField(max_length=10, default="2.2.1")
    endpoints = models.JSONField(default=list, blank=True, help_text="[{identifier, role, url}] from version details")
    token_theirs = models.CharField(max_length=64, blank=True, help_text="the token we send when calling them")
    token_ours_hash = models.CharField(max_length=64, unique=True, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    # How `token_theirs` goes into our Authorization header; found at registration (retry once on 401).
    token_encoding = models.CharField(max_length=6, choices=TokenEncoding.choices, default=TokenEncoding.BASE64)
    # Upper end of the last successful sessions pull: the next pull starts there.
    sessions_pulled_until = models.DateTimeField(null=True, blank=True)
    locations_pulled_at = models.DateTimeField(null=True, blank=True)
    # Their envelope `timestamp` minus our clock at receipt (s, positive: their clock is ahead).
    clock_skew_s = models.FloatField(null=True, blank=True)
    clock_skew_at = models.DateTimeField(null=True, blank=True)
    # Too many failed credentials attempts with token A: refused until an operator reissues it.
    token_locked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = "OCPI party"
        verbose_name_plural = "OCPI parties"

    def __str__(self) -> str:
        ids = f"{self.country_code}*{self.party_id}" if self.party_id else "?"
        return f"{self.name} ({ids}, {self.status})"

    def endpoint_url(self, identifier: str, role: str) -> str | None:
        """URL of their module `identifier` for interface `role` (SENDER / RECEIVER), if offered."""
        for endpoint in self.endpoints or []:
            if endpoint.get("identifier") == identifier and endpoint.get("role") == role:
                return endpoint.get("url")
        return None


class OcpiPartyRole(models.Model):
    """One identity (country_code, party_id) a party presented in its CredentialsRoles.

    An identity belongs to one party at a time, in any case: the unique key covers the identities of
    parties not revoked (`active`). Several roles under one identity (CPO and EMSP) share the row.
    """

    party = models.ForeignKey(OcpiParty, on_delete=models.CASCADE, related_name="roles")
    country_code = models.CharField(max_length=2)
    # OCPI's `party_id`; `party_id` itself is the FK column of `party`.
    ocpi_party_id = models.CharField(max_length=3)
    role = models.CharField(max_length=40, help_text="the roles under this identity, comma-separated (CPO, HUB, ...)")
    business_name = models.CharField(max_length=100, blank=True)
    # False once the party is revoked or an operator released the identity: then another may claim it.
    active = models.BooleanField(default=True, db_index=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        verbose_name = "OCPI party identity"
        verbose_name_plural = "OCPI party identities"
        constraints = [
            models.UniqueConstraint(Upper("country_code"), Upper("ocpi_party_id"), condition=Q(active=True),
                                    name="ocpi_role_unique_identity"),
        ]

    def __str__(self) -> str:
        return f"{self.country_code}*{self.ocpi_party_id} ({self.role})"


class Connector(models.Model):
    """A connector from the party's Locations module: what bounds a session's draw there."""

    class PowerType(models.TextChoices):
        AC_1_PHASE = "AC_1_PHASE"
        AC_2_PHASE = "AC_2_PHASE"
        AC_2_PHASE_SPLIT = "AC_2_PHASE_SPLIT"
        AC_3_PHASE = "AC_3_PHASE"
        DC = "DC"
        UNKNOWN = "", "unknown"

    party = models.ForeignKey(OcpiParty, on_delete=models.CASCADE, related_name="connectors")
    country_code = models.CharField(max_length=2)
    ocpi_party_id = models.CharField(max_length=3)
    location_id = models.CharField(max_length=36)
    evse_uid = models.CharField(max_length=36)
    connector_id = models.CharField(max_length=36)
    power_type = models.CharField(max_length=16, choices=PowerType.choices, blank=True, default="")
    # As sent when not one of the known power types (stored, treated as unknown).
    power_type_raw = models.CharField(max_length=32, blank=True, default="")
    max_voltage_v = models.FloatField(null=True, blank=True)
    max_amperage_a = models.FloatField(null=True, blank=True)
    max_electric_power_w = models.FloatField(null=True, blank=True)
    last_updated = models.DateTimeField()
    pulled_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint("party", Upper("location_id"), Upper("evse_uid"), Upper("connector_id"),
                                    name="ocpi_connector_unique_id"),
        ]

    def __str__(self) -> str:
        return f"{self.location_id}/{self.evse_uid}/{self.connector_id} ({self.power_type or 'unknown'})"


class Session(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "ACTIVE"
        COMPLETED = "COMPLETED"
        INVALID = "INVALID"
        PENDING = "PENDING"
        RESERVATION = "RESERVATION"

    party = models.ForeignKey(OcpiParty, on_delete=models.PROTECT, related_name="sessions")
    country_code = models.CharField(max_length=2)
    # OCPI's `party_id` of the session owner; `party_id` itself is the FK column of `party`.
    ocpi_party_id = models.CharField(max_length=3)
    session_id = models.CharField(max_length=36)
    location_id = models.CharField(max_length=36)
    evse_uid = models.CharField(max_length=36, db_index=True)
    connector_id = models.CharField(max_length=36)
    status = models.CharField(max_length=12, choices=Status.choices, db_index=True)
    start_date_time = models.DateTimeField()
    end_date_time = models.DateTimeField(null=True, blank=True)
    kwh = models.FloatField()
    last_updated = models.DateTimeField()
    phases = models.PositiveSmallIntegerField(null=True, blank=True)
    phases_source = models.CharField(max_length=16, choices=PHASES_SOURCES, blank=True, default="")
    last_current_a = models.FloatField(null=True, blank=True, help_text="highest per-phase current, latest state")
    current_source = models.CharField(max_length=8, choices=CURRENT_SOURCES, blank=True, default="")
    # Power of the latest state (kW): the POWER dimension, else the average since the state before (kWh).
    last_power_kw = models.FloatField(null=True, blank=True)
    # From the connector (Locations): the most the session can draw per phase, and in total.
    max_current_a = models.FloatField(null=True, blank=True)
    max_power_kw = models.FloatField(null=True, blank=True)
    # OCPI ChargingPeriods as received (the PATCH rule: periods in a PATCH are added).
    charging_periods = models.JSONField(default=list, blank=True)
    # When we last heard of it (push or pull, changed or not): what "stale" is measured against.
    seen_at = models.DateTimeField(default=clock.now, db_index=True)
    first_seen_at = models.DateTimeField(default=clock.now, editable=False)
    # OCPI fields we do not model (cdr_token, auth_method, currency, ...), kept so GET returns the object.
    extra = models.JSONField(default=dict, blank=True)
    # When we first saw it ACTIVE: `session_started` fires exactly once per session.
    first_active_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            # Keyed by its owning party, ids without case (CiString): one party's ids never meet another's.
            models.UniqueConstraint("party", Upper("country_code"), Upper("ocpi_party_id"), Upper("session_id"),
                                    name="ocpi_session_unique_party_id"),
        ]

    def __str__(self) -> str:
        return f"{self.country_code}*{self.ocpi_party_id} {self.session_id} ({self.status})"


class SessionState(models.Model):
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="states")
    timestamp = models.DateTimeField(help_text="the update's last_updated")
    kwh = models.FloatField(help_text="cumulative energy of the session")
    current_l1_a = models.FloatField(null=True, blank=True)
    current_l2_a = models.FloatField(null=True, blank=True)
    current_l3_a = models.FloatField(null=True, blank=True)
    # The POWER dimension, or (current_source "kwh") the average power since the state before.
    power_kw = models.FloatField(null=True, blank=True)
    phases = models.PositiveSmallIntegerField(null=True, blank=True)
    current_source = models.CharField(max_length=8, choices=CURRENT_SOURCES, blank=True, default="")
    status = models.CharField(max_length=12, choices=Session.Status.choices)
    received_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "timestamp"], name="ocpi_state_unique_ts")]
        indexes = [models.Index(fields=["timestamp"], name="ocpi_state_ts")]

    def __str__(self) -> str:
        return f"{self.session_id} @ {self.timestamp:%Y-%m-%d %H:%M:%S} {self.kwh} kWh"


class ChargingProfileCall(models.Model):
    """One outbound chargingprofiles call; its id is the last segment of its unique response_url."""

    class Kind(models.TextChoices):
        SET = "SET"
        CLEAR = "CLEAR"
        GET = "GET"

    class Response(models.TextChoices):
        NONE = "", "(none)"
        ACCEPTED = "ACCEPTED"
        REJECTED = "REJECTED"
        NOT_SUPPORTED = "NOT_SUPPORTED"
        TOO_OFTEN = "TOO_OFTEN"
        UNKNOWN_SESSION = "UNKNOWN_SESSION"
        ERROR = "ERROR", "ERROR (transport)"

    class Result(models.TextChoices):
        NONE = "", "(none yet)"
        ACCEPTED = "ACCEPTED"
        REJECTED = "REJECTED"
        UNKNOWN = "UNKNOWN"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="profile_calls")
    kind = models.CharField(max_length=5, choices=Kind.choices)
    created_at = models.DateTimeField(default=clock.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_result = models.CharField(max_length=15, choices=Response.choices, blank=True, default="")
    response_timeout_s = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    result = models.CharField(max_length=8, choices=Result.choices, blank=True, default="")
    result_at = models.DateTimeField(null=True, blank=True)
    result_payload = models.JSONField(null=True, blank=True)
    purpose_id = models.BigIntegerField(null=True, blank=True, db_index=True, help_text="flexibility Curtailment id")

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.response_result or '-'} / {self.result or '-'})"


class ActiveProfileUpdate(models.Model):
    """An ActiveChargingProfile the CPO pushed to us (PUT chargingprofiles/{session_id}): audit record."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="active_profiles")
    start_date_time = models.DateTimeField()
    charging_profile = models.JSONField()
    received_at = models.DateTimeField(default=clock.now, db_index=True)

    def __str__(self) -> str:
        return f"active profile of {self.session_id} @ {self.start_date_time:%H:%M:%S}"
