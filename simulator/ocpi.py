"""OCPI 2.2.1 wire helpers: DateTime format, the response envelope, tokens, Session objects."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from simulator.config import DA_PER_A, KW_PER_DA_PHASE, VOLTAGE_V

VERSION = "2.2.1"


class OcpiError(Exception):
    def __init__(self, http_status: int, status_code: int, message: str) -> None:
        super().__init__(message)
        self.http_status, self.status_code, self.message = http_status, status_code, message


def fmt_dt(when: datetime) -> str:
    """OCPI DateTime: UTC, second precision, 'Z' suffix."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_dt(text: str) -> datetime:
    """OCPI DateTime; a value without offset is UTC (the spec mandates UTC)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def envelope(now: datetime, data: Any = None, status_code: int = 1000, message: str | None = None) -> bytes:
    body: dict[str, Any] = {"status_code": status_code, "timestamp": fmt_dt(now)}
    if data is not None:
        body["data"] = data
    if message:
        body["status_message"] = message
    return json.dumps(body, separators=(",", ":")).encode()


def auth_header(token: str, encoding: str = "base64") -> str:
    """OCPI 2.2.1 sends the credentials token base64-encoded; some 2.2.x platforms send it raw."""
    if encoding == "raw":
        return "Token " + token
    return "Token " + base64.b64encode(token.encode()).decode()


def tokens_in_header(header: str | None, encoding: str | None = None) -> list[str]:
    """Candidate tokens from `Authorization: Token ...`.

    `encoding="base64"` accepts only the encoded form and `"raw"` only the plain one (a platform
    that reads one form answers 401 to the other); None accepts both (the test SCSP's leniency)."""
    if not header or not header.startswith("Token "):
        return []
    value = header[len("Token "):].strip()
    out = []
    if encoding in (None, "base64"):
        try:
            decoded = base64.b64decode(value, validate=True).decode("ascii")
            if decoded.isprintable() and decoded:
                out.append(decoded)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            pass
    if encoding in (None, "raw"):
        out.append(value)
    return out


@dataclass
class SessionRecord:
    """What the CPO platform knows about one session: its latest state and charging periods."""

    index: int
    session_id: str
    point: int
    start: datetime
    phases: int
    reports_current: bool
    kwh: float = 0.0
    current_da: int = 0
    status: str = "ACTIVE"
    end: datetime | None = None
    last_updated: datetime | None = None
    # (start, energy_kwh or None while open, current_a, power_kw)
    periods: list[list[Any]] = field(default_factory=list)
    # Standard profiles: one closed ChargingPeriod per pair of consecutive states (a CSMS building
    # periods from its meter values): (start, end, energy_kwh, sampled power at the end in kW).
    closed: list[tuple[datetime, datetime, float, float]] = field(default_factory=list)
    closed_sent: int = 0  # periods already pushed: a PATCH carries only the new ones (they are added)
    pushed: bool = False

    def add_state(self, when: datetime, kwh: float, current_da: int, completed: bool) -> None:
        if self.last_updated is not None and when > self.last_updated:
            self.closed.append((self.last_updated, when, round(max(0.0, kwh - self.kwh), 4),
                                round(current_da * self.phases * KW_PER_DA_PHASE, 3)))
        if self.periods:  # close the open period with its averages
            prev = self.periods[-1]
            dt_s = (when - prev[0]).total_seconds()
            d_kwh = max(0.0, kwh - self.kwh)
            prev[1] = round(d_kwh, 4)
            if dt_s > 0:
                prev[3] = round(d_kwh * 3600 / dt_s, 3)
                prev[2] = round(prev[3] * 1000 / (230.0 * self.phases), 1)
        self.kwh, self.current_da, self.last_updated = kwh, current_da, when
        if completed:
            self.status, self.end = "COMPLETED", when
        else:
            amps = current_da / DA_PER_A
            self.periods.append([when, None, amps, round(current_da * self.phases * KW_PER_DA_PHASE, 3)])

    def phase_currents(self) -> list[float | None]:
        amps = self.current_da / DA_PER_A
        return [amps, amps if self.phases == 3 else 0.0, amps if self.phases == 3 else 0.0]


def _period_json(p: list[Any]) -> dict[str, Any]:
    dims = [{"type": "CURRENT", "volume": p[2]}, {"type": "POWER", "volume": p[3]},
            {"type": "ENERGY", "volume": p[1] if p[1] is not None else 0.0}]
    return {"start_date_time": fmt_dt(p[0]), "dimensions": dims}


def _closed_json(period: tuple[datetime, datetime, float, float], profile: str, phases: int) -> dict[str, Any]:
    """A standard ChargingPeriod (mod_cdrs CdrDimension): ENERGY in kWh and TIME in hours; POWER
    (`power-only`: the meter's sampled power when the period closed); CURRENT and POWER as the
    period's averages (`current-average`)."""
    start, end, kwh, sampled_kw = period
    hours = (end - start).total_seconds() / 3600
    dims = [{"type": "ENERGY", "volume": kwh}, {"type": "TIME", "volume": round(hours, 4)}]
    if profile == "power-only":
        dims.append({"type": "POWER", "volume": sampled_kw})
    elif profile == "current-average":
        avg_kw = kwh / hours if hours > 0 else 0.0
        dims += [{"type": "CURRENT", "volume": round(avg_kw * 1000 / (VOLTAGE_V * phases), 1)},
                 {"type": "POWER", "volume": round(avg_kw, 3)}]
    return {"start_date_time": fmt_dt(start), "dimensions": dims}


def _ci(value: str, lowercase: bool) -> str:
    return value.lower() if lowercase else value


def session_object(rec: SessionRecord, country_code: str, party_id: str, location_id: str, evse_uid: str,
                   periods: int | None = None, *, profile: str = "extension",
                   lowercase: bool = False) -> dict[str, Any]:
    """The full OCPI Session (mod_sessions). `extension` adds `x_phase_currents_a` / `x_phases` and
    an open period with instantaneous CURRENT/POWER; the other profiles send standard fields only."""
    extension = profile == "extension"
    if extension:
        chosen = rec.periods if periods is None else rec.periods[-periods:]
        charging_periods = [_period_json(p) for p in chosen]
    else:
        chosen = rec.closed if periods is None else rec.closed[-periods:]
        charging_periods = [_closed_json(p, profile, rec.phases) for p in chosen]
    cc, party = _ci(country_code, lowercase), _ci(party_id, lowercase)
    obj: dict[str, Any] = {
        "country_code": cc,
        "party_id": party,
        "id": _ci(rec.session_id, lowercase),
        "start_date_time": fmt_dt(rec.start),
        "kwh": round(rec.kwh, 4),
        "cdr_token": {"country_code": cc, "party_id": party, "uid": _ci(f"RFID{rec.index:08d}", lowercase),
                      "type": "RFID", "contract_id": _ci(f"{country_code}-{party_id}-C{rec.index:08d}", lowercase)},
        "auth_method": "WHITELIST",
        "location_id": _ci(location_id, lowercase),
        "evse_uid": _ci(evse_uid, lowercase),
        "connector_id": "1",
        "currency": "EUR",
        "charging_periods": charging_periods,
        "status": rec.status,
        "last_updated": fmt_dt(rec.last_updated or rec.start),
    }
    if rec.end is not None:
        obj["end_date_time"] = fmt_dt(rec.end)
    if extension:
        obj["x_phases"] = rec.phases
        if rec.reports_current:
            obj["x_phase_currents_a"] = rec.phase_currents()
    return obj


def session_patch(rec: SessionRecord, *, profile: str = "extension") -> dict[str, Any]:
    """PATCH body: the fields a state changes. Standard profiles send only the periods not sent
    before (a receiver adds the periods of a PATCH to its list). `extension` keeps the old
    dialect: the closed and the new open period, to be merged by start_date_time."""
    body: dict[str, Any] = {
        "kwh": round(rec.kwh, 4),
        "status": rec.status,
        "last_updated": fmt_dt(rec.last_updated or rec.start),
    }
    if profile == "extension":
        body["charging_periods"] = [_period_json(p) for p in rec.periods[-2:]]
    else:
        body["charging_periods"] = [_closed_json(p, profile, rec.phases) for p in rec.closed[rec.closed_sent:]]
        rec.closed_sent = len(rec.closed)
    if rec.end is not None:
        body["end_date_time"] = fmt_dt(rec.end)
    if profile == "extension" and rec.reports_current:
        body["x_phase_currents_a"] = rec.phase_currents()
    return body


def location_object(station: int, country_code: str, party_id: str, single_phase: bool, max_a: float,
                    updated: datetime, *, lowercase: bool = False) -> dict[str, Any]:
    """A Location (mod_locations) for one station: two EVSEs with one Type 2 socket each, whose
    power_type / max_amperage / max_electric_power bound what a session there can draw."""
    phases = 1 if single_phase else 3
    connector = {"id": "1", "standard": "IEC_62196_T2", "format": "SOCKET",
                 "power_type": "AC_1_PHASE" if single_phase else "AC_3_PHASE", "max_voltage": int(VOLTAGE_V),
                 "max_amperage": int(max_a), "max_electric_power": round(VOLTAGE_V * max_a * phases),
                 "last_updated": fmt_dt(updated)}
    evses = [{"uid": _ci(f"EVSE{station:05d}-{k}", lowercase),
              "evse_id": f"{country_code}*{party_id}*E{station:05d}{k}", "status": "AVAILABLE",
              "capabilities": ["REMOTE_START_STOP_CAPABLE"], "connectors": [connector],
              "last_updated": fmt_dt(updated)} for k in (1, 2)]
    return {
        "country_code": _ci(country_code, lowercase), "party_id": _ci(party_id, lowercase),
        "id": _ci(f"LOC{station:05d}", lowercase), "publish": True,
        "address": f"Stationsplein {station + 1}", "city": "Utrecht", "country": "NLD",
        "coordinates": {"latitude": f"{52.09 + station * 1e-4:.6f}", "longitude": f"{5.11 + station * 1e-4:.6f}"},
        "time_zone": "Europe/Amsterdam", "evses": evses, "last_updated": fmt_dt(updated),
    }


def credentials_object(token: str, versions_url: str, country_code: str, party_id: str, name: str,
                       roles: list[tuple[str, str, str]] | None = None) -> dict:
    """Credentials with one CPO role, or the given (role, country_code, party_id) list (a Hub)."""
    roles = roles or [("CPO", country_code, party_id)]
    return {"token": token, "url": versions_url, "roles": [
        {"role": role, "business_details": {"name": f"{name} {cc}/{pid}" if len(roles) > 1 else name},
         "party_id": pid, "country_code": cc} for role, cc, pid in roles]}


def at_offset(start: datetime, seconds: int) -> datetime:
    return start + timedelta(seconds=int(seconds))
