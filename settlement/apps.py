from django.apps import AppConfig


class SettlementConfig(AppConfig):
    """Its periodic task is on the beat schedule in smatch/settings.py; celery's autodiscovery imports tasks.py."""

    name = "settlement"
    default_auto_field = "django.db.models.BigAutoField"
