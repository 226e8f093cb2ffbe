from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Model registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The Celery app and its tasks in every process (web, worker, tests running them eagerly),
        # so a task sent from a view goes to the configured broker.
        from registry import celery, tasks  # noqa: F401
