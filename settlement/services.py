"""Settlement actions. The file door needs no database; the database door loads the same frames.

Every door (REST, admin, commands, tasks) calls these functions. Work is queued here on commit by
the task's explicit name through `smatch.celery.enqueue` (RUN_TASK): this module never imports
`settlement.tasks`, which imports it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from django.conf import settings
from django.db import transaction
from django.db.models import F

from flexibility import responsiveness
from settlement.core.baselines import BASELINES, DEFAULT_BASELINE
from settlement.core.frames import FrameError
from settlement.core.reconstruction import ReconstructionParams
from settlement.core.settle import SettlementResult, SettleParams, settle_frames
from settlement.error_codes import SettlementError, SettlementErrorCode
from settlement.io import db, files, prices
from settlement.models import ActivationResult, ImbalancePrice, IspResult, SettlementRun
from settlement.outputs import drawing, exports
from smatch import clock
from smatch.celery import app, enqueue

__all__ = ["SettlementError", "SettlementErrorCode"]  # re-exported: the doors catch services.SettlementError

log = logging.getLogger(__name__)
Code = SettlementErrorCode
RUN_TASK = "settlement.run"  # settlement.tasks.run_settlement_task, queued by name (no import of tasks)


# A grid of microseconds would make the worker build billions of points per session.
GRID_S_MIN, GRID_S_MAX = 1.0, 900.0


@dataclass(frozen=True)
class FileSettlement:
    result: SettlementResult
    written: list[Path]


def settle_files(states_path: str | Path, activations_path: str | Path, out_dir: str | Path, *,
                 prices_path: str | Path | None = None, meters_path: str | Path | None = None,
                 baseline: str = DEFAULT_BASELINE, grid_s: float = 60.0, shape: str = "step",
                 progress: Callable[[int], None] | None = None) -> FileSettlement:
    """Read S.csv / A.csv (/ prices / meters), settle, and write DIR atomically."""
    drawing.start_fork_server(settings.SETTLEMENT_CHART_PROCESSES)
    try:
        states = files.read_states(states_path)
        activations = files.read_activations(activations_path)
        price_series = prices.load_prices(prices_path) if prices_path else None
        meters = files.read_meters(meters_path) if meters_path else None
        if progress:
            progress(1)
        params = SettleParams(reconstruction=ReconstructionParams(grid_s=grid_s, shape=shape),
                              rebound_window_s=settings.SETTLEMENT_REBOUND_WINDOW_MIN * 60.0,
                              delivery=responsiveness.rule())
        result = settle_frames(states, activations, price_series, baseline=baseline, params=params,
                               progress=progress, meters=meters)
    except files.InputFileError as exc:
        raise SettlementError(Code.BAD_INPUT_FILE, str(exc)) from exc
    except prices.PriceFileError as exc:
        raise SettlementError(Code.BAD_PRICE_FILE, str(exc)) from exc
    except (FrameError, ValueError) as exc:
        raise SettlementError(Code.BAD_INPUT, str(exc)) from exc
    written = exports.write_outputs(result, out_dir, progress=progress,
                                    chart_processes=settings.SETTLEMENT_CHART_PROCESSES)
    return FileSettlement(result, written)


def import_prices(path: str | Path) -> int:
    """Store a price file's ISPs (any supported format); a re-import updates them. Returns the count."""
    try:
        series = prices.load_prices(path)
    except prices.PriceFileError as exc:
        raise SettlementError(Code.BAD_PRICE_FILE, str(exc)) from exc
    with transaction.atomic():
        for isp_start, price in series.items():
            ImbalancePrice.objects.update_or_create(
                isp_start=isp_start.to_pydatetime(), defaults={"price_eur_per_mwh": price, "source": Path(path).name})
    return len(series)


def start_run(period_from: datetime, period_to: datetime, *, user=None, baseline: str = DEFAULT_BASELINE,
              grid_s: float = 60.0, run_async: bool = True):
    """Create a settlement run over the database and queue it (or run it now when run_async=False)."""
    check_run(period_from, period_to, baseline, grid_s)
    run = SettlementRun.objects.create(created_by=user, period_from=period_from, period_to=period_to,
                                       baseline=baseline, grid_s=grid_s)
    if run_async:
        queue_run(run.pk)
    else:
        run_settlement(run.pk)
        run.refresh_from_db()
    return run


def check_run(period_from: datetime, period_to: datetime, baseline: str, grid_s: float) -> None:
    """The rules of a database run, for every door (API, admin, command): SettlementError if broken."""
    if period_from.tzinfo is None or period_to.tzinfo is None:
        raise SettlementError(Code.NAIVE_PERIOD, "period_from and period_to must be timezone-aware")
    if not period_to > period_from:
        raise SettlementError(Code.EMPTY_PERIOD, "period_to must be after period_from")
    if baseline != "all" and baseline not in BASELINES:
        raise SettlementError(Code.UNKNOWN_BASELINE,
                              f"unknown baseline {baseline!r}; known: {', '.join(BASELINES)}, all")
    if not GRID_S_MIN <= grid_s <= GRID_S_MAX:
        raise SettlementError(Code.GRID_S_OUT_OF_RANGE,
                              f"grid_s must be between {GRID_S_MIN:g} and {GRID_S_MAX:g} seconds")


def queue_run(run_id: int) -> None:
    """Queue the run's task once the transaction commits (by name: see the module docstring)."""
    transaction.on_commit(lambda: enqueue(app.signature(RUN_TASK), run_id))


def output_file(run, name: str) -> Path:
    """A file of a run's output folder, by its listed name only (no path tricks)."""
    folder = Path(run.output_dir) if run.output_dir else None
    if folder is None or not folder.is_dir() or name not in {p.name for p in folder.iterdir()}:
        raise SettlementError(Code.NO_SUCH_OUTPUT, f"run {run.pk} has no output file {name!r}")
    return folder / name


def run_settlement(run_id: int) -> None:
    """Load the run's period from the database, settle it, write files and result rows. Idempotent.

    The run is claimed by a conditional UPDATE (pending -> running, with a fresh heartbeat), so a
    redelivered task or a second worker finds nothing to do. Any exception ends the run `failed`
    with its message; a worker that dies leaves a heartbeat that stops, and `sweep_stale_runs` acts.
    """
    now = clock.now()
    claimed = SettlementRun.objects.filter(pk=run_id, status=SettlementRun.Status.PENDING).update(
        status=SettlementRun.Status.RUNNING, started_at=now, heartbeat_at=now, error="", attempts=F("attempts") + 1)
    if not claimed:
        return  # done, failed, or another worker holds it
    run = SettlementRun.objects.get(pk=run_id)
    beat = _heartbeat(run_id)
    try:
        acts = db.activations_frame(run.period_from, run.period_to)
        if acts.empty:
            raise SettlementError(Code.NO_ACTIVATIONS, "no activations in the period")
        margin = timedelta(seconds=settings.SETTLEMENT_MARGIN_S)
        start = acts["t_signal"].min() - margin
        end = acts["t_clear"].max() + max(margin, timedelta(minutes=settings.SETTLEMENT_REBOUND_WINDOW_MIN))
        states = db.states_frame(start, end)
        if states.empty:
            raise SettlementError(Code.NO_STATES, "no session states around the activations")
        beat(1)
        params = SettleParams(reconstruction=ReconstructionParams(grid_s=run.grid_s),
                              rebound_window_s=settings.SETTLEMENT_REBOUND_WINDOW_MIN * 60.0,
                              delivery=responsiveness.rule())
        result = settle_frames(states, acts, db.prices_series(start, end), baseline=run.baseline,
                               params=params, progress=beat,
                               curtailments=db.curtailments_frame(list(acts["activation_id"])))
        out_dir = Path(settings.SETTLEMENT_OUTPUT_DIR) / f"run_{run.pk}"
        exports.write_outputs(result, out_dir, progress=beat, chart_processes=settings.SETTLEMENT_CHART_PROCESSES)
        _store(run, result, acts, out_dir)
    except Exception as exc:  # every failure must end the run, with its message
        expected = isinstance(exc, SettlementError | FrameError | ValueError)
        message = str(exc) if expected else f"{type(exc).__name__}: {exc}"
        SettlementRun.objects.filter(pk=run_id, status=SettlementRun.Status.RUNNING).update(
            status=SettlementRun.Status.FAILED, error=message[:10_000], finished_at=clock.now())
        if expected:
            log.warning("settlement run %s failed: %s", run_id, message)
        else:
            log.exception("settlement run %s failed", run_id)


def _heartbeat(run_id: int, every_s: float = 10.0) -> Callable[[int], None]:
    """A progress callback that renews the run's lease at most every `every_s` seconds."""
    last = [0.0]

    def beat(_steps: int = 1) -> None:
        tick = time.monotonic()
        if tick - last[0] >= every_s:
            last[0] = tick
            SettlementRun.objects.filter(pk=run_id, status=SettlementRun.Status.RUNNING).update(
                heartbeat_at=clock.now())

    return beat


@dataclass(frozen=True)
class SweepReport:
    requeued: list[int]
    failed: list[int]


def sweep_stale_runs() -> SweepReport:
    """Runs left `running` by a dead worker (heartbeat older than the lease): re-queued while they have
    attempts left, else failed with the reason. Pending runs older than the lease (a lost queue message)
    are queued again; the claim's conditional UPDATE makes a duplicate harmless."""
    now = clock.now()
    stale_before = now - timedelta(seconds=settings.SETTLEMENT_LEASE_S)
    running = SettlementRun.objects.filter(status=SettlementRun.Status.RUNNING, heartbeat_at__lt=stale_before)
    requeued, failed = [], []
    for run in running.only("pk", "attempts", "heartbeat_at"):
        base = SettlementRun.objects.filter(pk=run.pk, status=SettlementRun.Status.RUNNING,
                                            heartbeat_at=run.heartbeat_at)
        if run.attempts < settings.SETTLEMENT_MAX_ATTEMPTS:
            if base.update(status=SettlementRun.Status.PENDING):
                requeued.append(run.pk)
        elif base.update(status=SettlementRun.Status.FAILED, finished_at=now,
                         error=f"worker lost: no heartbeat since {run.heartbeat_at.isoformat()} "
                               f"after {run.attempts} attempt(s)"):
            failed.append(run.pk)
    lost = SettlementRun.objects.filter(status=SettlementRun.Status.PENDING, created_at__lt=stale_before,
                                        heartbeat_at__isnull=True).values_list("pk", flat=True)
    with transaction.atomic():
        for pk in [*requeued, *lost]:
            queue_run(pk)
    if requeued or failed:
        log.warning("settlement sweep: re-queued %s, failed %s", requeued, failed)
    return SweepReport(requeued + [pk for pk in lost if pk not in requeued], failed)


def _db_value(value):
    """A result frame's value as the database stores it: NaN / NaT -> NULL, Timestamp -> datetime."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def _store(run, result: SettlementResult, acts: pd.DataFrame, out_dir: Path) -> None:
    brp_of = dict(zip(acts["activation_id"], acts["brp_id"], strict=True))
    with transaction.atomic():
        run.activations.all().delete()
        by_id = {}
        for row in result.activations.to_dict("records"):
            by_id[row["activation_id"]] = ActivationResult.objects.create(
                run=run, activation_id=int(row["activation_id"]), brp_id=brp_of.get(row["activation_id"]),
                **{f: _db_value(row[f]) for f in (
                    "t_signal", "t_clear", "p_signal_kw", "p_clear_kw", "baseline_kwh", "delivered_kwh", "shed_kwh",
                    "sessions", "value_eur", "baseline", "rebound_kwh", "never_delivered_kwh", "rebound_value_eur",
                    "net_value_eur", "detected_drop_at", "detected_recovery_at", "coverage_share",
                    "data_quality", "dq_reasons")})
        IspResult.objects.bulk_create([
            IspResult(activation_result=by_id[row["activation_id"]],
                      **{f: _db_value(row[f]) for f in ("isp_start", "baseline_kwh", "delivered_kwh", "shed_kwh",
                                                    "price_eur_per_mwh", "value_eur")})
            for row in result.isp.to_dict("records")])
        summary = {"warnings": result.warnings, "kpis": {k: _db_value(v) for k, v in result.kpis.items()},
                   "activations": len(result.activations), "baseline": run.baseline}
        done = SettlementRun.objects.filter(pk=run.pk, status=SettlementRun.Status.RUNNING).update(
            status=SettlementRun.Status.DONE, finished_at=clock.now(), output_dir=str(out_dir), summary=summary)
        if not done:  # the sweep took the run away (lease expired): keep nothing of this attempt
            raise SettlementError(Code.LEASE_LOST, f"run {run.pk} is no longer running (lease lost); results discarded")

