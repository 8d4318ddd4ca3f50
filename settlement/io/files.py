"""Reading the file door's CSV inputs into the core's frames, with errors naming file, line and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from settlement.core.frames import ACTIVATION_COLUMNS, CURRENT_COLUMNS, STATE_COLUMNS
from settlement.io.wiretime import parse_wire_times

METER_COLUMNS = ["station_id", "interval_start", "energy_kwh"]


class InputFileError(ValueError):
    """A bad input file; the message says which file, line and column."""


def _read(path: Path, columns: list[str], optional: tuple[str, ...] = ()) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, skip_blank_lines=False,
                            encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise InputFileError(f"{path}: not a readable CSV ({str(exc).strip()})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputFileError(f"{path} line 1: missing column(s) {', '.join(missing)} (header: {list(frame.columns)})")
    frame = frame[columns + [c for c in optional if c in frame.columns]]
    frame.index = np.arange(2, len(frame) + 2)  # file line numbers: the header is line 1
    blank = (frame == "").all(axis=1)
    return frame[~blank.to_numpy()]


def _fail(path: Path, frame: pd.DataFrame, bad: np.ndarray, col: str, why: str) -> None:
    if bad.any():
        line = frame.index[np.flatnonzero(bad)[0]]
        raise InputFileError(f"{path} line {line}, column {col}: {frame[col].loc[line]!r} {why}")


def _times(path: Path, frame: pd.DataFrame, col: str) -> pd.Series:
    """ISO 8601 as the wire sends it (settlement.io.wiretime): any case, hour-only or mixed offsets, and no
    designator = UTC (OCPI). The first bad row is named with its value."""
    raw = frame[col].str.strip()
    _fail(path, frame, (raw == "").to_numpy(), col, "is empty (an ISO 8601 date-time is needed)")
    parsed, bad = parse_wire_times(raw)
    _fail(path, frame, bad, col, "is not an ISO 8601 date-time (e.g. 2025-05-06T23:04:00Z)")
    return parsed


def _numbers(path: Path, frame: pd.DataFrame, col: str, *, required: bool, minimum: float | None = 0.0) -> pd.Series:
    raw = frame[col].str.strip()
    blank = (raw == "").to_numpy()
    if required:
        _fail(path, frame, blank, col, "is empty (a number is needed)")
    values = pd.to_numeric(raw.where(~blank, "nan"), errors="coerce")
    _fail(path, frame, (values.isna().to_numpy() & ~blank) | np.isinf(values.to_numpy()), col, "is not a number")
    if minimum is not None:
        _fail(path, frame, (values < minimum).to_numpy(), col, f"is below {minimum:g}")
    return values.astype(float)


def read_states(path: str | Path) -> pd.DataFrame:
    """S.csv: session_id,evse_uid,timestamp,kwh,current_l1_a,current_l2_a,current_l3_a[,station_id]."""
    path = Path(path)
    frame = _read(path, STATE_COLUMNS, optional=("station_id",))
    for col in ("session_id", "evse_uid"):
        _fail(path, frame, (frame[col].str.strip() == "").to_numpy(), col, "is empty")
    out = pd.DataFrame({"session_id": frame["session_id"].str.strip(), "evse_uid": frame["evse_uid"].str.strip(),
                        "timestamp": _times(path, frame, "timestamp"),
                        "kwh": _numbers(path, frame, "kwh", required=True)})
    for col in CURRENT_COLUMNS:
        out[col] = _numbers(path, frame, col, required=False)
    if "station_id" in frame.columns:
        out["station_id"] = frame["station_id"].str.strip()
    if out.empty:
        raise InputFileError(f"{path}: no states")
    return out.reset_index(drop=True)


def read_activations(path: str | Path) -> pd.DataFrame:
    """A.csv: activation_id,t_signal,t_clear."""
    path = Path(path)
    frame = _read(path, ACTIVATION_COLUMNS)
    _fail(path, frame, (frame["activation_id"].str.strip() == "").to_numpy(), "activation_id", "is empty")
    _fail(path, frame, frame["activation_id"].duplicated().to_numpy(), "activation_id", "appears twice")
    out = pd.DataFrame({"activation_id": frame["activation_id"].str.strip(),
                        "t_signal": _times(path, frame, "t_signal"), "t_clear": _times(path, frame, "t_clear")})
    _fail(path, frame, (out["t_clear"] <= out["t_signal"]).to_numpy(), "t_clear", "is not after t_signal")
    if out.empty:
        raise InputFileError(f"{path}: no activations")
    return out.reset_index(drop=True)


def read_meters(path: str | Path) -> pd.DataFrame:
    """M.csv: station_id,interval_start,energy_kwh (15-minute smart-meter energy per station)."""
    path = Path(path)
    frame = _read(path, METER_COLUMNS)
    _fail(path, frame, (frame["station_id"].str.strip() == "").to_numpy(), "station_id", "is empty")
    return pd.DataFrame({"station_id": frame["station_id"].str.strip(),
                         "interval_start": _times(path, frame, "interval_start"),
                         "energy_kwh": _numbers(path, frame, "energy_kwh", required=True)}).reset_index(drop=True)
