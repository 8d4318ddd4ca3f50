from django.apps import AppConfig


class FlexibilityConfig(AppConfig):
    name = "flexibility"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Here, not at the top: Django imports apps.py before the models are ready.
        from ocpi.signals import profile_result_received, session_started

        from . import tasks
        from .services import activations

        session_started.connect(tasks.on_sessions_started, dispatch_uid="flexibility.sessions_started")
        profile_result_received.connect(activations.on_profile_result, dispatch_uid="flexibility.profile_result")
