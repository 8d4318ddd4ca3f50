from django.apps import AppConfig


class LocalRunConfig(AppConfig):
    """Registered for its commands (`demo`, `serve`); it has no models."""

    name = "localrun"
