"""Pure validators for the OCPI payloads we receive. No ORM: plain data in, plain data out.

Every problem raises `OcpiValidationError` (OCPI 2001) with a message naming the field; nothing else
escapes, whatever JSON comes in (property-tested).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import OcpiValidationError

SESSION_STATUSES = frozenset({"ACTIVE", "COMPLETED", "INVALID", "PENDING", "RESERVATION"})
AUTH_METHODS = frozenset({"AUTH_REQUEST", "COMMAND", "WHITELIST"})
PROFILE_RESULTS = frozenset({"ACCEPTED", "REJECTED", "UNKNOWN"})
RESPONSE_RESULTS = frozenset({"ACCEPTED", "REJECTED", "NOT_SUPPORTED", "TOO_OFTEN", "UNKNOWN_SESSION"})
ROLES = frozenset({"CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP"})
VOLTS_PER_PHASE = 230.0  # converting a POWER dimension (kW) to current per phase
# The one assumption for an unknown phase count, used the same way everywhere: a power is converted
# to a per-phase current as if on ASSUMED_PHASES (display, delivery); decisions and the expected shed
# consider every count in PLAUSIBLE_PHASES (flexibility.planning).
ASSUMED_PHASES = 3
PLAUSIBLE_PHASES = (1, 2, 3)
# The fleet prior for a best estimate among the plausible counts: how many EVs charge on 1, 2 or 3
# phases when nothing else is known (Europe: most BEVs have 11 kW three-phase on-board chargers, most
# PHEVs and small BEVs one phase; two-phase chargers are rare). Weighs the expected shed and the
# delivery verdicts; the range over PLAUSIBLE_PHASES is still shown beside it.
PHASE_PRIOR = {1: 0.35, 2: 0.03, 3: 0.62}
# IEC 61851-1: the least current a charger may offer an EV per phase; below it, it stops. A draw under
# it on some phase count is only plausible for an EV finishing its charge (it asks for less itself).
MIN_CHARGING_A = 6.0
BELOW_MIN_WEIGHT = 0.1  # how much less likely such a finishing EV is than one charging normally
# Without the connector's max_amperage (no Locations): AC charging draws at most 32 A per phase (IEC
# 62196-2 type 2; 63 A sockets are rare). Only weighs phase counts, never rules one out for planning.
DEFAULT_MAX_CURRENT_A = 32.0

# RFC 3339 as OCPI restricts it; no designator means UTC. Offsets are accepted and converted.
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?$")
_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")


def format_datetime(when: datetime) -> str:
    """OCPI DateTime, string(25): UTC with a Z designator, whole seconds or milliseconds (never more)."""
    spec = "milliseconds" if when.microsecond // 1000 else "seconds"
    return when.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def cistring(value: Any, field: str, max_length: int, *, allow_empty: bool = False) -> str:
    """A CiString(n): printable ASCII, at most `max_length` characters."""
    if not isinstance(value, str):
        raise OcpiValidationError(f"{field}: expected a string, got {type(value).__name__}")
    if not _PRINTABLE.match(value):
        raise OcpiValidationError(f"{field}: only printable ASCII is allowed")
    if len(value) > max_length:
        raise OcpiValidationError(f"{field}: at most {max_length} characters, got {len(value)}")
    if not value and not allow_empty:
        raise OcpiValidationError(f"{field}: must not be empty")
    return value


def ocpi_datetime(value: Any, field: str) -> datetime:
    """An OCPI DateTime as an aware UTC datetime."""
    if not isinstance(value, str) or not _DATETIME.match(value):
        raise OcpiValidationError(f"{field}: expected an RFC 3339 UTC timestamp like 2025-05-06T17:04:00Z")
    text = value[:-1] if value.endswith("Z") else value
    # Python parses at most 6 fractional digits; OCPI allows more.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise OcpiValidationError(f"{field}: not a valid date/time ({exc})") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def number(value: Any, field: str, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OcpiValidationError(f"{field}: expected a number, got {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise OcpiValidationError(f"{field}: must be a finite number")
    if minimum is not None and result < minimum:
        raise OcpiValidationError(f"{field}: must be >= {minimum:g}, got {result:g}")
    return result


def integer(value: Any, field: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OcpiValidationError(f"{field}: expected an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise OcpiValidationError(f"{field}: must be >= {minimum}, got {value}")
    return value


def enum(value: Any, field: str, allowed: frozenset[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise OcpiValidationError(f"{field}: must be one of {', '.join(sorted(allowed))}")
    return value


def obj(value: Any, field: str) -> dict:
    if not isinstance(value, dict):
        raise OcpiValidationError(f"{field}: expected a JSON object, got {type(value).__name__}")
    return value


TOKEN_TYPES = frozenset({"AD_HOC_USER", "APP_USER", "OTHER", "RFID"})


def cdr_token(value: Any, field: str) -> dict:
    """A CdrToken (mod_cdrs): every field is required; kept verbatim once valid."""
    token = obj(value, field)
    cistring(token.get("country_code"), f"{field}.country_code", 2)
    cistring(token.get("party_id"), f"{field}.party_id", 3)
    cistring(token.get("uid"), f"{field}.uid", 36)
    enum(token.get("type"), f"{field}.type", TOKEN_TYPES)
    cistring(token.get("contract_id"), f"{field}.contract_id", 36)
    return token


def url(value: Any, field: str) -> str:
    text = cistring(value, field, 255)
    if not re.match(r"^https?://[^\s/]+", text):
        raise OcpiValidationError(f"{field}: expected an http(s) URL")
    return text


@dataclass(frozen=True)
class SessionUpdate:
    """A validated Session PUT/PATCH. `fields` holds only what the payload set (model field names)."""

    last_updated: datetime
    fields: dict
    extra: dict  # OCPI fields kept verbatim (cdr_token, auth_method, currency, ...)
    currents_a: tuple[float | None, float | None, float | None] | None  # None: nothing reported
    power_kw: float | None
    phases: int | None
    current_dimension_a: float | None  # CURRENT of the latest charging period (phases applied later)
    # ChargingPeriods as sent (validated, start_date_time normalised); None when the field is absent.
    charging_periods: list[dict] | None = None
    # The latest period's average power from its ENERGY over its TIME (or over its start to last_updated).
    period_power_kw: float | None = None


# Session fields: (OCPI name, model name, parser). Required on PUT, optional on PATCH.
_SESSION_FIELDS = (
    ("country_code", "country_code", lambda v, f: cistring(v, f, 2)),
    ("party_id", "ocpi_party_id", lambda v, f: cistring(v, f, 3)),
    ("id", "session_id", lambda v, f: cistring(v, f, 36)),
    ("start_date_time", "start_date_time", ocpi_datetime),
    ("kwh", "kwh", lambda v, f: number(v, f, minimum=0.0)),
    ("cdr_token", None, lambda v, f: cdr_token(v, f)),
    ("auth_method", None, lambda v, f: enum(v, f, AUTH_METHODS)),
    ("location_id", "location_id", lambda v, f: cistring(v, f, 36)),
    ("evse_uid", "evse_uid", lambda v, f: cistring(v, f, 36)),
    ("connector_id", "connector_id", lambda v, f: cistring(v, f, 36)),
    ("currency", None, lambda v, f: cistring(v, f, 3)),
    ("status", "status", lambda v, f: enum(v, f, SESSION_STATUSES)),
    ("last_updated", "last_updated", ocpi_datetime),
)


_KEPT_OPTIONAL = ("authorization_reference", "meter_id", "total_cost")


def validate_session(payload: Any, *, partial: bool) -> SessionUpdate:
    """Validate a Session object (PUT: complete; PATCH: `partial`, but `last_updated` is always required)."""
    data = obj(payload, "body")
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, model_name, parse in _SESSION_FIELDS:
        if name not in data or data[name] is None:
            if not partial or name == "last_updated":
                raise OcpiValidationError(f"{name}: required field missing")
            continue
        value = parse(data[name], name)
        if model_name:
            fields[model_name] = value
        else:
            extra[name] = value
    for name in _KEPT_OPTIONAL:
        if name in data:
            extra[name] = data[name]
    if data.get("end_date_time") is not None:
        fields["end_date_time"] = ocpi_datetime(data["end_date_time"], "end_date_time")
    elif "end_date_time" in data or not partial:
        fields["end_date_time"] = None
    currents = _phase_currents(data.get("x_phase_currents_a"))
    declared_phases = None
    if data.get("x_phases") is not None:
        declared_phases = integer(data["x_phases"], "x_phases", minimum=1)
        if declared_phases > 3:
            raise OcpiValidationError("x_phases: at most 3")
    periods = charging_periods(data.get("charging_periods"))
    current_dim, power_kw = latest_period_dimensions(periods or [])
    period_power = latest_period_energy_power_kw(periods or [], fields["last_updated"])
    phases = sum(1 for c in currents if c) if currents else None
    return SessionUpdate(
        last_updated=fields["last_updated"],
        fields=fields,
        extra=extra,
        currents_a=currents,
        power_kw=power_kw,
        phases=phases or declared_phases,
        current_dimension_a=current_dim,
        charging_periods=periods,
        period_power_kw=period_power,
    )


def _phase_currents(value: Any) -> tuple[float | None, float | None, float | None] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 3:
        raise OcpiValidationError("x_phase_currents_a: expected [l1, l2, l3] (numbers or null)")
    parsed = [None if v is None else number(v, f"x_phase_currents_a[{i}]", minimum=0.0) for i, v in enumerate(value)]
    return (parsed[0], parsed[1], parsed[2])


def charging_periods(value: Any) -> list[dict] | None:
    """ChargingPeriods: each a start_date_time and a non-empty list of {type, volume}; starts unique.

    Returned sorted by start, with the start normalised (so the same period sent twice compares equal).
    """
    if value is None:
        return None
    if not isinstance(value, list):
        raise OcpiValidationError("charging_periods: expected a list")
    periods: dict[datetime, dict] = {}
    for i, period in enumerate(value):
        period = obj(period, f"charging_periods[{i}]")
        start = ocpi_datetime(period.get("start_date_time"), f"charging_periods[{i}].start_date_time")
        dims = period.get("dimensions")
        if not isinstance(dims, list) or not dims:
            raise OcpiValidationError(f"charging_periods[{i}].dimensions: expected a non-empty list")
        for j, dim in enumerate(dims):
            where = f"charging_periods[{i}].dimensions[{j}]"
            dim = obj(dim, where)
            cistring(dim.get("type"), f"{where}.type", 32)
            number(dim.get("volume"), f"{where}.volume")
        if start in periods:
            raise OcpiValidationError(f"charging_periods[{i}]: a second period starting at {format_datetime(start)}")
        periods[start] = {**period, "start_date_time": format_datetime(start)}
    return [periods[start] for start in sorted(periods)]


def latest_period_dimensions(periods: list[dict]) -> tuple[float | None, float | None]:
    """(CURRENT A, POWER kW) of the latest of validated, sorted periods (CURRENT is the period's average)."""
    if not periods:
        return None, None
    values = {dim["type"]: float(dim["volume"]) for dim in periods[-1]["dimensions"]}
    current, power = values.get("CURRENT"), values.get("POWER")
    return (max(current, 0.0) if current is not None else None, max(power, 0.0) if power is not None else None)


def latest_period_energy_power_kw(periods: list[dict], last_updated: datetime) -> float | None:
    """Average power (kW) of the latest period: its ENERGY (kWh) over its TIME (h), or over the time
    from its start to `last_updated` when TIME is absent. None when neither gives a duration."""
    if not periods:
        return None
    latest = periods[-1]
    values = {dim["type"]: float(dim["volume"]) for dim in latest["dimensions"]}
    energy, hours = values.get("ENERGY"), values.get("TIME")
    if energy is None or energy < 0:
        return None
    if hours is None:
        hours = (last_updated - ocpi_datetime(latest["start_date_time"], "period")).total_seconds() / 3600.0
    return energy / hours if hours > 0 else None


def merge_periods(stored: list[dict], added: list[dict]) -> list[dict]:
    """The PATCH rule: periods in a PATCH are added to the stored ones (sorted by start).

    A period sent again unchanged is stored once. The latest stored period is still open, so a
    PATCH may send it again with its final values (CSMSs close it that way): it is replaced. A
    closed period sent again with other dimensions overlaps it: refused (2001), nothing half-stored.
    """
    by_start = {ocpi_datetime(p["start_date_time"], "stored period"): p for p in stored}
    open_start = max(by_start) if by_start else None
    for period in added:
        start = ocpi_datetime(period["start_date_time"], "charging_periods")
        known = by_start.get(start)
        if known is not None and start != open_start and known.get("dimensions") != period.get("dimensions"):
            raise OcpiValidationError(f"charging_periods: the period starting at {period['start_date_time']} "
                                      "overlaps a closed stored period with other dimensions")
        by_start[start] = period
    return [by_start[start] for start in sorted(by_start)]


def validate_credentials(payload: Any) -> dict:
    """A Credentials object: token string(64) printable ASCII, versions url, one or more roles."""
    data = obj(payload, "body")
    token = cistring(data.get("token"), "token", 64)
    if " " in token:
        raise OcpiValidationError("token: must not contain spaces")
    roles = data.get("roles")
    if not isinstance(roles, list) or not roles:
        raise OcpiValidationError("roles: expected a non-empty list of CredentialsRole")
    parsed = []
    for i, role in enumerate(roles):
        role = obj(role, f"roles[{i}]")
        details = obj(role.get("business_details"), f"roles[{i}].business_details")
        parsed.append({
            "role": enum(role.get("role"), f"roles[{i}].role", ROLES),
            "party_id": cistring(role.get("party_id"), f"roles[{i}].party_id", 3).upper(),
            "country_code": cistring(role.get("country_code"), f"roles[{i}].country_code", 2).upper(),
            "name": cistring(details.get("name"), f"roles[{i}].business_details.name", 100),
        })
    return {"token": token, "url": url(data.get("url"), "url"), "roles": parsed}


def validate_profile_result(payload: Any) -> dict:
    """ChargingProfileResult / ClearProfileResult / ActiveChargingProfileResult (result + optional profile)."""
    data = obj(payload, "body")
    result = enum(data.get("result"), "result", PROFILE_RESULTS)
    if data.get("profile") is not None:
        validate_active_profile(data["profile"], "profile")
    return {"result": result}


def validate_active_profile(payload: Any, field: str = "body") -> dict:
    """ActiveChargingProfile: start_date_time + ChargingProfile."""
    data = obj(payload, field)
    start = ocpi_datetime(data.get("start_date_time"), f"{field}.start_date_time")
    profile = obj(data.get("charging_profile"), f"{field}.charging_profile")
    enum(profile.get("charging_rate_unit"), f"{field}.charging_profile.charging_rate_unit", frozenset({"A", "W"}))
    periods = profile.get("charging_profile_period", [])
    if not isinstance(periods, list):
        raise OcpiValidationError(f"{field}.charging_profile.charging_profile_period: expected a list")
    for i, period in enumerate(periods):
        where = f"{field}.charging_profile.charging_profile_period[{i}]"
        period = obj(period, where)
        integer(period.get("start_period"), f"{where}.start_period", minimum=0)
        number(period.get("limit"), f"{where}.limit", minimum=0.0)
    return {"start_date_time": start, "charging_profile": profile}


def validate_profile_response(payload: Any) -> tuple[str, int | None]:
    """The synchronous ChargingProfileResponse: (result, timeout seconds)."""
    data = obj(payload, "data")
    result = enum(data.get("result"), "result", RESPONSE_RESULTS)
    timeout = data.get("timeout")
    return result, (integer(timeout, "timeout", minimum=0) if timeout is not None else None)
