from django.apps import AppConfig


class OcpiClientConfig(AppConfig):
    name = "ocpi_client"
    default_auto_field = "django.db.models.BigAutoField"
