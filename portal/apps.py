from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Patient portal"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registered on import: the deploy check of the login limits; the signal that ends a
        # deactivated account's calendar feeds and invitations.
        from . import checks, signals  # noqa: F401
