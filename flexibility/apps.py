from django.apps import AppConfig


class FlexibilityConfig(AppConfig):
    name = "flexibility"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Here, not at the top: Django imports apps.py before the models are ready.
        from ocpi.signals import profile_results_received, session_started

        from . import tasks
        from .services import activations

        session_started.connect(tasks.on_sessions_started, dispatch_uid="flexibility.sessions_started")
        profile_results_received.connect(activations.on_profile_results, dispatch_uid="flexibility.profile_results")
