from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "itbclinic.accounts"
    label = "accounts"
    verbose_name = "Accounts and roles"
