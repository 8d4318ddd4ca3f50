from django.apps import AppConfig
from django.conf import settings


class FlexibilityConfig(AppConfig):
    name = "flexibility"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from ocpi.signals import profile_results_received, session_started
        from smatch.celery import app

        from . import dispatch, roles, tasks

        post_migrate.connect(roles.ensure_groups, dispatch_uid="flexibility.roles")
        session_started.connect(tasks.on_sessions_started, dispatch_uid="flexibility.sessions_started")
        profile_results_received.connect(dispatch.on_profile_results, dispatch_uid="flexibility.profile_results")
        app.conf.beat_schedule["flexibility.sweep"] = {
            "task": "flexibility.sweep",
            "schedule": settings.SWEEP_INTERVAL_S,
        }
