"""/healthz: database and broker reachability for compose and load balancers (200 / 503).

The safety scan's part of the probe is in test_watchdog.py.
"""

import logging

import pytest
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from itbclinic.celery import app as celery_app
from refills import watchdog
from refills.models import TaskRun

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _scheduled_tasks_just_ran(db):
    """These tests are about the database and broker: the scan is running, however long the session has been."""
    now = timezone.now()
    for name in watchdog.WATCHED_TASKS:
        TaskRun.objects.update_or_create(name=name, defaults={"last_completed_at": now})


# Nothing listens on port 1 of the loopback interface: the connection is refused at once.
UNREACHABLE_REDIS = "redis://:s3cret-in-url@127.0.0.1:1/0"


def test_healthy_with_the_configured_database_and_broker(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_unavailable_when_the_broker_is_unreachable(client, monkeypatch, caplog):
    # The producer URL: overrides settings and CELERY_BROKER_URL alike, in this process only.
    monkeypatch.setenv("CELERY_BROKER_WRITE_URL", UNREACHABLE_REDIS)

    with caplog.at_level(logging.WARNING, logger="itbclinic.views"):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "broker": "down"}
    assert "healthz: broker unreachable (OperationalError)" in caplog.text
    assert "s3cret" not in caplog.text


def test_unavailable_when_the_filesystem_broker_folder_is_missing(client, monkeypatch, tmp_path):
    monkeypatch.setenv("CELERY_BROKER_WRITE_URL", "filesystem://")
    missing = str(tmp_path / "no-such-folder")
    # The namespaced key: Celery reads its settings under the CELERY_ prefix first.
    monkeypatch.setitem(
        celery_app.conf,
        "CELERY_BROKER_TRANSPORT_OPTIONS",
        {"data_folder_in": missing, "data_folder_out": missing, "processed_folder": missing},
    )

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["broker"] == "down"


def test_unavailable_when_the_database_is_unreachable(client, monkeypatch):
    class NoDatabase:
        def cursor(self):
            raise OperationalError("connection refused")

    monkeypatch.setattr("itbclinic.views.connection", NoDatabase())

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "down", "broker": "ok"}


def test_plain_http_probe_is_not_redirected_while_pages_are(settings):
    settings.SECURE_SSL_REDIRECT = True  # as in production (the test suite turns it off)
    probe = Client()  # a new client builds its middleware with the setting above

    assert probe.get("/healthz").status_code == 200
    page = probe.get("/accounts/login/")
    assert page.status_code == 301
    assert page["Location"] == "https://testserver/accounts/login/"


def test_only_get_is_allowed(client):
    assert client.post("/healthz").status_code == 405
