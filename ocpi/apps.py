from django.apps import AppConfig


class OcpiConfig(AppConfig):
    name = "ocpi"
    # The label keeps the tables, migrations, permissions, admin URLs and task names of the old package name.
    label = "ocpi_client"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the tasks in every process: they are queued by name, and a worker's autodiscovery
        # is lazy (an eager call in a web process or a test would not find them).
        from . import tasks  # noqa: F401
