from django.apps import AppConfig


class OcpiConfig(AppConfig):
    name = "ocpi"
    # The label keeps the tables, migrations, permissions, admin URLs and task names of the old package name.
    label = "ocpi_client"
    default_auto_field = "django.db.models.BigAutoField"
