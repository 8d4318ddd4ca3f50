"""Timestamps as the wire sends them (OCPI DateTime and the ISO 8601 forms CPO exports use).

Accepted: `T` or a space between date and time, either case (`t`, `z`); seconds and fractions
optional; offsets `Z`, `+hh:mm`, `+hhmm` or hour-only `+hh`, mixed within one file; no designator =
UTC (OCPI: "All timestamps are formatted as string(25) ... UTC"). Everything else is refused by row.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

_FORM = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](?P<time>\d{2}(?::\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?))?"
    r"\s?(?P<zone>[Zz]|[+-]\d{2}(?::?\d{2})?)?$")


def _normal(raw: str) -> str | None:
    """The ISO form pandas parses without guessing (`YYYY-MM-DDTHH:MM:SS[.f]+hh:mm`), or None."""
    m = _FORM.match(raw)
    if m is None:
        return None
    time = m["time"] or "00:00:00"
    time += ":00" * (2 - time.count(":"))
    zone = m["zone"] or "+00:00"
    if zone in ("Z", "z"):
        zone = "+00:00"
    elif len(zone) == 3:
        zone += ":00"
    elif ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    return f"{m['date']}T{time}{zone}"


def parse_wire_times(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """(aware UTC times, bad mask): NaT and True where a value is not one of the accepted forms or is
    not a real date-time (month 13, 25:00...)."""
    text = raw.astype(str).str.strip()
    normal = text.map(_normal)
    parsed = pd.to_datetime(normal.where(normal.notna(), None), format="ISO8601", utc=True, errors="coerce")
    return parsed, parsed.isna().to_numpy()


def parse_wire_time(raw: str) -> pd.Timestamp | None:
    """One value; None when it is not an accepted form."""
    times, bad = parse_wire_times(pd.Series([raw]))
    return None if bad[0] else times.iloc[0]
