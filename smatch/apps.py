from django.apps import AppConfig


class SmatchConfig(AppConfig):
    """The project's own app, below the others: the staff roles and the `staff_create` command; no models."""

    name = "smatch"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import roles

        post_migrate.connect(roles.ensure_groups, dispatch_uid="smatch.roles")
