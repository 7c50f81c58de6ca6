"""Test-only tasks, loaded into a test worker with `start(include=("tests.itbclinic.worker_tasks",))`."""

from celery import shared_task

from itbclinic.accounts.models import User


@shared_task(name="tests.record_worker_probe_task")
def record_worker_probe_task(user_id: int, marker: str) -> None:
    # A write into the shared database: proves the worker uses the test's own database.
    User.objects.filter(pk=user_id).update(first_name=marker)
