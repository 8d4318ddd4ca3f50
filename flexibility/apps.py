from django.apps import AppConfig


class FlexibilityConfig(AppConfig):
    name = "flexibility"
    default_auto_field = "django.db.models.BigAutoField"
