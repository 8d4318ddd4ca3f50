from django.apps import AppConfig


class FlexibilityConfig(AppConfig):
    name = "flexibility"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from ocpi.signals import profile_result_received, session_started
        from smatch import roles

        from . import dispatch, tasks

        post_migrate.connect(roles.ensure_groups, dispatch_uid="smatch.roles")
        session_started.connect(tasks.on_sessions_started, dispatch_uid="flexibility.sessions_started")
        profile_result_received.connect(dispatch.on_profile_result, dispatch_uid="flexibility.profile_result")
