"""Writing a settlement: CSV files, one XLSX workbook and PNG charts, all-or-nothing."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from settlement import charts
from settlement.core.settle import SettlementResult

MAX_CHARTED_ACTIVATIONS = 200  # charts take ~0.2 s each; the CSVs always hold every activation


def tables(result: SettlementResult) -> dict[str, pd.DataFrame]:
    out = {
        "activations": result.activations,
        "isp": result.isp,
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
    return out


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Aware datetimes as ISO 8601 UTC text (CSV is unambiguous, XLSX cannot hold time zones)."""
    frame = frame.copy()
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
            frame[col] = frame[col].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif frame[col].dtype == object:
            frame[col] = frame[col].map(lambda v: v.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(v, pd.Timestamp)
                                        else v)
    return frame


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
        plain = {name: _plain(frame) for name, frame in tables(result).items()}
        for name, frame in plain.items():
            frame.to_csv(tmp / f"{name}.csv", index=False)
        with pd.ExcelWriter(tmp / "settlement.xlsx", engine="openpyxl") as xlsx:
            for name, frame in plain.items():
                frame.to_excel(xlsx, sheet_name=name[:31], index=False)
        for activation_id in list(result.baselines)[:MAX_CHARTED_ACTIVATIONS]:
            charts.shed_chart(result, activation_id, tmp / f"activation_{_safe(activation_id)}_shed.png")
            charts.theoretical_chart(result, activation_id, tmp / f"activation_{_safe(activation_id)}_theoretical.png")
            if progress:
                progress(1)
        charts.erasable_chart(result, tmp / "erasable_by_time_of_day.png")
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
