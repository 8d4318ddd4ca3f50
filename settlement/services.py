"""Settlement actions. The file door needs no database; the database door loads the same frames."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from settlement import exports, files, prices
from settlement.core.frames import FrameError
from settlement.core.reconstruction import ReconstructionParams
from settlement.core.settle import SettlementResult, SettleParams, settle_frames


class SettlementError(ValueError):
    """Bad input or parameters: the message says what and where; nothing was written."""


@dataclass(frozen=True)
class FileSettlement:
    result: SettlementResult
    written: list[Path]


def settle_files(states_path: str | Path, activations_path: str | Path, out_dir: str | Path, *,
                 prices_path: str | Path | None = None, meters_path: str | Path | None = None,
                 baseline: str = "trapezoid", grid_s: float = 60.0, shape: str = "step",
                 progress: Callable[[int], None] | None = None) -> FileSettlement:
    """Read S.csv / A.csv (/ prices / meters), settle, and write DIR atomically."""
    try:
        states = files.read_states(states_path)
        activations = files.read_activations(activations_path)
        price_series = prices.load_prices(prices_path) if prices_path else None
        meters = files.read_meters(meters_path) if meters_path else None
        if progress:
            progress(1)
        params = SettleParams(reconstruction=ReconstructionParams(grid_s=grid_s, shape=shape))
        result = settle_frames(states, activations, price_series, baseline=baseline, params=params,
                               progress=progress, meters=meters)
    except (files.InputFileError, prices.PriceFileError, FrameError, ValueError) as exc:
        raise SettlementError(str(exc)) from exc
    written = exports.write_outputs(result, out_dir, progress=progress)
    return FileSettlement(result, written)


def steps_for(activation_count: int) -> int:
    """Progress-bar total for settle_files: read, reconstruct, each activation, each activation's charts."""
    return 2 + 2 * min(activation_count, exports.MAX_CHARTED_ACTIVATIONS)
