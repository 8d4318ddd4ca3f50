"""Imbalance prices from files: a plain CSV and two real Dutch formats, detected automatically.

Returns a Series of EUR/MWh indexed by the aware UTC start of each 15-minute ISP. A demand-response
activation answers a *shortage*, so the shortage price is used (SHORT, TAKE_FROM_SYSTEM).
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd

from settlement.io.wiretime import parse_wire_time

ISP = pd.Timedelta(minutes=15)
LOCAL_TZ = "Europe/Amsterdam"
PLAIN = ["isp_start", "price_eur_per_mwh"]
NL_CSV = ["START_DATETIME_UTC", "IMBALANCE_LONG_EUR_MWH", "IMBALANCE_SHORT_EUR_MWH"]


class PriceFileError(ValueError):
    """A price file that cannot be read; the message names the file, line and column."""


def load_prices(path: str | Path) -> pd.Series:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PriceFileError(f"{path}: cannot read ({exc})") from exc
    return parse_prices(text, str(path))


def parse_prices(text: str, name: str = "prices") -> pd.Series:
    """Detect the format from the content and parse it."""
    stripped = text.lstrip()
    if stripped.startswith("<"):
        series = _tennet_xml(text, name)
    else:
        header = next(csv.reader(io.StringIO(stripped)), [])
        header = [h.strip() for h in header]
        if header[:2] == PLAIN:
            series = _csv(text, name, "isp_start", "price_eur_per_mwh", require_offset=True)
        elif all(h in header for h in NL_CSV):
            series = _csv(text, name, "START_DATETIME_UTC", "IMBALANCE_SHORT_EUR_MWH", require_offset=False)
        else:
            raise PriceFileError(
                f"{name} line 1: unknown price format (header {header!r}); expected "
                f"'isp_start,price_eur_per_mwh', the NL CSV {','.join(NL_CSV)} or a TenneT ImbalancePrice XML")
    return _finish(series, name)


def _csv(text: str, name: str, time_col: str, price_col: str, require_offset: bool) -> pd.Series:
    starts, prices = [], []
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    for line, row in enumerate(reader, start=2):
        raw_t, raw_p = (row.get(time_col) or "").strip(), (row.get(price_col) or "").strip()
        if not raw_t and not raw_p and not any((v or "").strip() for v in row.values()):
            continue  # blank line
        starts.append(_timestamp(raw_t, name, line, time_col, require_offset))
        prices.append(_number(raw_p, name, line, price_col))
    return pd.Series(prices, index=pd.DatetimeIndex(starts, name="isp_start"), dtype=float)


def _timestamp(raw: str, name: str, line: int, col: str, require_offset: bool) -> pd.Timestamp:
    """ISO 8601 as the wire sends it (settlement.io.wiretime); no designator = UTC. `require_offset` is
    kept for the callers' intent: both formats' times are UTC unless they say otherwise."""
    if not raw:
        raise PriceFileError(f"{name} line {line}, column {col}: empty date-time")
    when = parse_wire_time(raw)
    if when is None:
        raise PriceFileError(f"{name} line {line}, column {col}: {raw!r} is not an ISO 8601 date-time "
                             "(e.g. 2025-05-06T23:00:00Z)")
    if when != when.floor(ISP):
        raise PriceFileError(f"{name} line {line}, column {col}: {raw!r} is not an ISP start (HH:00/15/30/45)")
    return when


def _number(raw: str, name: str, line: int, col: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise PriceFileError(f"{name} line {line}, column {col}: {raw!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise PriceFileError(f"{name} line {line}, column {col}: {raw!r} is not a finite number")
    return value


def _tennet_xml(text: str, name: str) -> pd.Series:
    """TenneT export: DATE (MM/DD/YYYY, local), PTU 1..92/96/100 and local PERIOD_FROM.

    The UTC start is local midnight (as UTC) + (PTU - 1) x 15 min, which is right on DST days where
    PERIOD_FROM repeats (02:00-02:45 twice in October) or jumps (no 02:xx in March); PERIOD_FROM is
    then checked against it.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise PriceFileError(f"{name} line {exc.position[0]}: not well-formed XML ({exc})") from None
    records = root.iter("Record")
    starts, prices = [], []
    for n, rec in enumerate(records, start=1):
        where = f"{name} Record {n}"
        fields = {child.tag: (child.text or "").strip() for child in rec}
        for tag in ("DATE", "PTU", "TAKE_FROM_SYSTEM"):
            if not fields.get(tag):
                raise PriceFileError(f"{where}: missing {tag}")
        try:
            day = pd.Timestamp(pd.to_datetime(fields["DATE"], format="%m/%d/%Y"))
            ptu = int(fields["PTU"])
        except ValueError:
            raise PriceFileError(f"{where}: bad DATE {fields['DATE']!r} or PTU {fields['PTU']!r}") from None
        midnight = day.tz_localize(LOCAL_TZ)
        next_midnight = (day + pd.Timedelta(days=1)).tz_localize(LOCAL_TZ)
        n_ptus = int((next_midnight - midnight).total_seconds() // 900)  # 92, 96 or 100
        if not 1 <= ptu <= n_ptus:
            raise PriceFileError(f"{where}: PTU {ptu} outside 1..{n_ptus} for {day.date()}")
        start = midnight.tz_convert("UTC") + (ptu - 1) * ISP
        local_from = start.tz_convert(LOCAL_TZ).strftime("%H:%M")
        if fields.get("PERIOD_FROM") and fields["PERIOD_FROM"] != local_from:
            raise PriceFileError(f"{where}: PERIOD_FROM {fields['PERIOD_FROM']} does not match PTU {ptu} "
                                 f"on {day.date()} (expected {local_from} local)")
        starts.append(start)
        prices.append(_number(fields["TAKE_FROM_SYSTEM"], name, n, "TAKE_FROM_SYSTEM"))
    if not starts:
        raise PriceFileError(f"{name}: no <Record> elements in the XML")
    return pd.Series(prices, index=pd.DatetimeIndex(starts, name="isp_start"), dtype=float)


def _finish(series: pd.Series, name: str) -> pd.Series:
    if series.empty:
        raise PriceFileError(f"{name}: no prices")
    dup = series.index[series.index.duplicated(keep=False)]
    if len(dup):
        values = series[series.index == dup[0]]
        if values.nunique() > 1:
            raise PriceFileError(f"{name}: ISP {dup[0].isoformat()} has conflicting prices {list(values)}")
        series = series[~series.index.duplicated()]
    return series.sort_index().rename("price_eur_per_mwh")
