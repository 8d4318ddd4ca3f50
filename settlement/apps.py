from django.apps import AppConfig
from django.conf import settings


class SettlementConfig(AppConfig):
    name = "settlement"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from smatch.celery import app

        from . import tasks  # noqa: F401 - registers the tasks the schedule names

        app.conf.beat_schedule["settlement.sweep_stale_runs"] = {
            "task": "settlement.sweep_stale_runs",
            "schedule": settings.SETTLEMENT_SWEEP_INTERVAL_S,
        }
