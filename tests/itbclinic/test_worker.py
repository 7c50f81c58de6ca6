"""A real Celery worker process executes tasks sent from the test process, on both brokers."""

import pytest
import redis
from django.conf import settings

from itbclinic.accounts.models import User
from itbclinic.tasks import heartbeat_task
from tests import factories
from tests.celery_worker import wait_until
from tests.conftest import require_service
from tests.itbclinic.worker_tasks import record_worker_probe_task

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def redis_broker_url() -> str:
    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://"):
        require_service("Redis", "CELERY_BROKER_URL is not a redis:// URL (CI sets one)")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        require_service("Redis", f"{url} does not answer: {exc}")
    return url


def assert_worker_executes_tasks(worker) -> None:
    user = factories.NurseFactory(first_name="Before")
    worker.start(include=("tests.itbclinic.worker_tasks",))

    heartbeat_task.delay()
    record_worker_probe_task.delay(user.pk, "Seen by the worker")

    worker.wait_for_log("heartbeat: worker alive at", timeout=60)
    assert wait_until(lambda: User.objects.get(pk=user.pk).first_name == "Seen by the worker", timeout=60), worker.log
    assert "Task tests.record_worker_probe_task" in worker.log
    assert "succeeded" in worker.log


def test_worker_executes_tasks_over_the_filesystem_broker(celery_worker_factory):
    worker = celery_worker_factory(broker_url="filesystem://")

    assert_worker_executes_tasks(worker)

    assert worker.env["CELERY_BROKER_URL"] == "filesystem://"
    assert worker.env["CELERY_BROKER_DATA_DIR"].endswith("broker")


def test_worker_executes_tasks_over_redis(celery_worker_factory):
    worker = celery_worker_factory(broker_url=redis_broker_url())

    assert_worker_executes_tasks(worker)

    assert worker.env["CELERY_BROKER_URL"].startswith("redis://")


def test_the_default_worker_uses_the_configured_broker_and_restarts_after_a_kill(celery_worker_process):
    worker = celery_worker_process
    assert worker.env["CELERY_BROKER_URL"] == settings.CELERY_BROKER_URL
    worker.start()

    assert worker.kill() == -9
    assert not worker.running
    worker.start()
    heartbeat_task.delay()

    worker.wait_for_log("heartbeat: worker alive at", timeout=60)
    assert worker.log.count(" ready.") == 2
