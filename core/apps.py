from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Installed for its one table (the used form tokens, core/idempotency.py) and its template tags."""

    name = "core"
    default_auto_field = "django.db.models.BigAutoField"
