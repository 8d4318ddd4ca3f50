"""Writing a settlement: CSV files, one XLSX workbook and PNG charts, all-or-nothing."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from settlement.core.settle import SettlementResult
from settlement.outputs import charts

MAX_CHARTED_ACTIVATIONS = 200  # charts take ~0.2 s each; the CSVs always hold every activation


DIR_MODE, FILE_MODE = 0o750, 0o640  # the analysts' group reads the run's folder; nobody else


def tables(result: SettlementResult) -> dict[str, pd.DataFrame]:
    out = {
        "activations": result.activations,
        "isp": result.isp,
        "rebound": result.rebound,
        "sessions": result.reconstruction.session_flags,
        "non_responders": result.non_responders,
        "erasable_by_time_of_day": result.erasable_by_tod.reset_index(),
    }
    if result.kpis:
        out["driver_impact"] = pd.DataFrame([result.kpis])
    if result.meters is not None:
        m = result.meters
        out["meters"] = m.intervals
        out["meters_summary"] = pd.DataFrame([{
            "error_before": m.error_before, "error_after": m.error_after,
            "abs_error_before": m.abs_error_before, "abs_error_after": m.abs_error_after}])
    return {name: rounded(frame) for name, frame in out.items()}


COUNT_COLUMNS = {"sessions", "flagged_sessions", "n_states", "phases", "capped", "count"}


def _decimals(column: str) -> int | None:
    """Figures rounded to their meaning: kWh and kW to 3 decimals, EUR (and EUR/MWh) to 2, shares to 4
    (a percentage to 2), other ratios and errors to 4; None leaves a column as it is."""
    if column.endswith(("_kwh", "_kw")):
        return 3
    if column.endswith(("_eur", "_eur_per_mwh")):
        return 2
    if column.endswith(("_pct", "_a", "_min", "_minutes")):
        return 2
    if column.endswith(("_share", "_rate")) or column.startswith(("error", "abs_error")):
        return 4
    return None


def rounded(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with figures rounded (see _decimals) and counts as integers (blank where unknown)."""
    frame = frame.copy()
    for col in frame.columns:
        if col in COUNT_COLUMNS and pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = pd.to_numeric(frame[col]).round().astype("Int64")
        elif (digits := _decimals(str(col))) is not None and pd.api.types.is_float_dtype(frame[col]):
            frame[col] = frame[col].round(digits)
    return frame


def _is_time(series: pd.Series) -> bool:
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return True
    if series.dtype != object:
        return False
    stamps = series.map(lambda v: isinstance(v, pd.Timestamp) and v is not pd.NaT)
    return bool(stamps.any()) and bool((stamps | series.map(lambda v: v is None or v is pd.NaT)).all())


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """CSV: aware datetimes as ISO 8601 UTC text (unambiguous)."""
    frame = frame.copy()
    for col in frame.columns:
        if _is_time(frame[col]):
            times = pd.to_datetime(frame[col], utc=True)
            frame[col] = times.dt.strftime("%Y-%m-%dT%H:%M:%SZ").where(times.notna(), "")
    return frame


def _excel(frame: pd.DataFrame) -> pd.DataFrame:
    """XLSX: real Excel datetimes in UTC (Excel has no time zones), the header saying so."""
    frame = frame.copy()
    renames = {}
    for col in frame.columns:
        if _is_time(frame[col]):
            frame[col] = pd.to_datetime(frame[col], utc=True).dt.tz_localize(None)
            renames[col] = f"{col} (UTC)"
    return frame.rename(columns=renames)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]


def write_outputs(result: SettlementResult, out_dir: str | Path,
                  progress: Callable[[int], None] | None = None) -> list[Path]:
    """Write everything into a temporary directory next to `out_dir`, then move it in place.

    A failure leaves `out_dir` as it was. Returns the written paths.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        frames = tables(result)
        for name, frame in frames.items():
            _plain(frame).to_csv(tmp / f"{name}.csv", index=False)
        with pd.ExcelWriter(tmp / "settlement.xlsx", engine="openpyxl", datetime_format="yyyy-mm-dd hh:mm:ss") as xlsx:
            for name, frame in frames.items():
                _excel(frame).to_excel(xlsx, sheet_name=name[:31], index=False)
        for activation_id in list(result.baselines)[:MAX_CHARTED_ACTIVATIONS]:
            charts.shed_chart(result, activation_id, tmp / f"activation_{_safe(activation_id)}_shed.png")
            charts.theoretical_chart(result, activation_id, tmp / f"activation_{_safe(activation_id)}_theoretical.png")
            if progress:
                progress(1)
        charts.erasable_chart(result, tmp / "erasable_by_time_of_day.png")
        os.chmod(tmp, DIR_MODE)  # mkdtemp makes it 0700
        for path in tmp.iterdir():
            os.chmod(path, FILE_MODE)
        return _install(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _install(tmp: Path, out_dir: Path) -> list[Path]:
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return sorted(out_dir.iterdir())
    written = []
    for path in sorted(tmp.iterdir()):
        os.replace(path, out_dir / path.name)  # each file atomically replaces an older run's
        written.append(out_dir / path.name)
    return written
