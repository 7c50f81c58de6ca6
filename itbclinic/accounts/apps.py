from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "itbclinic.accounts"
    label = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the user_logged_in receiver)
