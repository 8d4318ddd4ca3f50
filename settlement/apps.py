from django.apps import AppConfig


class SettlementConfig(AppConfig):
    """Its periodic task is on the beat schedule in smatch/settings.py."""

    name = "settlement"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the tasks in every process: they are queued by name, and a worker's autodiscovery
        # is lazy (an eager call in a web process or a test would not find them).
        from . import tasks  # noqa: F401
