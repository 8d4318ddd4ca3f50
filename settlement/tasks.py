"""Celery task: one settlement run, by id (idempotent: a done or running run is left alone)."""

from celery import shared_task

from settlement import services


@shared_task(name="settlement.run", acks_late=True)
def run_settlement_task(run_id: int) -> None:
    # No retry: the errors are bad data (recorded on the run), not transient; a lost worker
    # re-delivers the task (acks_late) and the run's status keeps it from running twice.
    services.run_settlement(run_id)
