"""Celery tasks: one settlement run, by id, and the sweep of runs whose worker died."""

from celery import shared_task

from settlement import services


@shared_task(name="settlement.run", acks_late=True)
def run_settlement_task(run_id: int) -> None:
    # No retry: the errors are bad data (recorded on the run), not transient; a lost worker
    # re-delivers the task (acks_late), the claim (pending -> running) keeps it from running twice,
    # and the sweep re-queues a run whose heartbeat stopped.
    services.run_settlement(run_id)


@shared_task(name="settlement.sweep_stale_runs")
def sweep_stale_runs_task() -> None:
    services.sweep_stale_runs()
