from django.apps import AppConfig


class RefillsConfig(AppConfig):
    name = "refills"
    verbose_name = "Care schedule: refills, appointments, reminders"
