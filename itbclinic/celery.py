"""The standard Celery bootstrap: configuration comes from Django settings (CELERY_*)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "itbclinic.settings")

app = Celery("itbclinic")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["itbclinic"], related_name="tasks")
