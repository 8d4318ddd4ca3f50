"""Writing a settlement: CSV files, one XLSX workbook and PNG charts, all-or-nothing."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from settlement.core.settle import SettlementResult
from settlement.outputs import charts, drawing

MAX_CHARTED_ACTIVATIONS = 200  # the CSVs always hold every activation
DEFAULT_CHART_PROCESSES = min(4, os.cpu_count() or 1)


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
                  progress: Callable[[int], None] | None = None,
                  chart_processes: int = DEFAULT_CHART_PROCESSES) -> list[Path]:
    """Write everything into a temporary directory next to `out_dir`, then move it in place.

    The activation charts are drawn by up to `chart_processes` processes while this one writes the
    tables (drawing.drawing_processes says when fewer pay). A failure leaves `out_dir` as it was.
    Returns the written paths.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        jobs = []
        for activation_id in list(result.baselines)[:MAX_CHARTED_ACTIVATIONS]:
            stem = f"activation_{_safe(activation_id)}"
            jobs += [(charts.shed_spec(result, activation_id), tmp / f"{stem}_shed.png"),
                     (charts.theoretical_spec(result, activation_id), tmp / f"{stem}_theoretical.png")]

        def tables_and_summary_chart() -> None:
            frames = tables(result)
            for name, frame in frames.items():
                _plain(frame).to_csv(tmp / f"{name}.csv", index=False)
            write_xlsx({name: _excel(frame) for name, frame in frames.items()}, tmp / "settlement.xlsx")
            charts.erasable_chart(result, tmp / "erasable_by_time_of_day.png")

        drawing.render_all(jobs, drawing.drawing_processes(len(jobs), chart_processes),
                          meanwhile=tables_and_summary_chart, done=(lambda _path: progress(1)) if progress else None)
        os.chmod(tmp, DIR_MODE)  # mkdtemp makes it 0700
        for path in tmp.iterdir():
            os.chmod(path, FILE_MODE)
        return _install(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_xlsx(sheets: dict[str, pd.DataFrame], path: Path) -> None:
    """One sheet per frame, a bold header row, missing values as empty cells.

    openpyxl's write-only mode streams the rows; pandas' `to_excel` builds every cell as an object
    first, which a cProfile of a 16,000-point day's outputs showed as the workbook's main cost.
    """
    book = Workbook(write_only=True)
    bold = Font(bold=True)
    for name, frame in sheets.items():
        sheet = book.create_sheet(name[:31])
        sheet.freeze_panes = "A2"
        header = []
        for column in frame.columns:
            cell = WriteOnlyCell(sheet, value=str(column))
            cell.font = bold
            header.append(cell)
        sheet.append(header)
        columns = [frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in frame.columns]
        for row in zip(*columns, strict=True):
            sheet.append(row)
    book.save(path)


def _install(tmp: Path, out_dir: Path) -> list[Path]:
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return sorted(out_dir.iterdir())
    written = []
    for path in sorted(tmp.iterdir()):
        os.replace(path, out_dir / path.name)  # each file atomically replaces an older run's
        written.append(out_dir / path.name)
    return written
