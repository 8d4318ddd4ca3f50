"""OCPI 2.2.1 wire helpers: DateTime format, the response envelope, tokens, Session objects."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from simulator.config import DA_PER_A, KW_PER_DA_PHASE

VERSION = "2.2.1"


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


def auth_header(token: str) -> str:
    """OCPI 2.2.1: the credentials token travels base64-encoded."""
    return "Token " + base64.b64encode(token.encode()).decode()


def tokens_in_header(header: str | None) -> list[str]:
    """Candidate tokens from `Authorization: Token ...`: decoded base64 first, then the raw value
    (pre-2.2.1 peers send it plain; accepting both costs nothing and avoids a silent 401)."""
    if not header or not header.startswith("Token "):
        return []
    raw = header[len("Token "):].strip()
    out = []
    try:
        decoded = base64.b64decode(raw, validate=True).decode("ascii")
        if decoded.isprintable() and decoded:
            out.append(decoded)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    out.append(raw)
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
    pushed: bool = False

    def add_state(self, when: datetime, kwh: float, current_da: int, completed: bool) -> None:
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


def session_object(rec: SessionRecord, country_code: str, party_id: str, location_id: str, evse_uid: str,
                   periods: int | None = None) -> dict[str, Any]:
    """The full OCPI Session (mod_sessions) plus our `x_phase_currents_a` / `x_phases` extension."""
    chosen = rec.periods if periods is None else rec.periods[-periods:]
    obj: dict[str, Any] = {
        "country_code": country_code,
        "party_id": party_id,
        "id": rec.session_id,
        "start_date_time": fmt_dt(rec.start),
        "kwh": round(rec.kwh, 4),
        "cdr_token": {"country_code": country_code, "party_id": party_id, "uid": f"RFID{rec.index:08d}",
                      "type": "RFID", "contract_id": f"{country_code}-{party_id}-C{rec.index:08d}"},
        "auth_method": "WHITELIST",
        "location_id": location_id,
        "evse_uid": evse_uid,
        "connector_id": "1",
        "currency": "EUR",
        "charging_periods": [_period_json(p) for p in chosen],
        "status": rec.status,
        "last_updated": fmt_dt(rec.last_updated or rec.start),
        "x_phases": rec.phases,
    }
    if rec.end is not None:
        obj["end_date_time"] = fmt_dt(rec.end)
    if rec.reports_current:
        obj["x_phase_currents_a"] = rec.phase_currents()
    return obj


def session_patch(rec: SessionRecord) -> dict[str, Any]:
    """PATCH body: the fields a state changes. Only the closed and the new charging period are
    sent (the full list is in PUT and GET); receivers merge periods by start_date_time."""
    body: dict[str, Any] = {
        "kwh": round(rec.kwh, 4),
        "status": rec.status,
        "last_updated": fmt_dt(rec.last_updated or rec.start),
        "charging_periods": [_period_json(p) for p in rec.periods[-2:]],
    }
    if rec.end is not None:
        body["end_date_time"] = fmt_dt(rec.end)
    if rec.reports_current:
        body["x_phase_currents_a"] = rec.phase_currents()
    return body


def credentials_object(token: str, versions_url: str, country_code: str, party_id: str, name: str) -> dict:
    return {"token": token, "url": versions_url, "roles": [
        {"role": "CPO", "business_details": {"name": name}, "party_id": party_id, "country_code": country_code}]}


def at_offset(start: datetime, seconds: int) -> datetime:
    return start + timedelta(seconds=int(seconds))
