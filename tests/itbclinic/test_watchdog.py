"""The watchdog: scheduled tasks record their runs; /healthz and staff pages say when the scan has stopped."""

import datetime as dt
import logging

import pytest
import time_machine
from django.test import Client

from refills import tasks, watchdog
from refills.models import TaskRun
from tests import factories

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2025, 3, 3, 10, 0, tzinfo=dt.UTC)
SCAN_PERIOD = dt.timedelta(seconds=300)  # settings.CELERY_BEAT_SCHEDULE["scan-reminders"]
BANNER = "The safety scan has not run since"


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def started_long_ago(monkeypatch):
    """This web process has been up for a day: no grace for a task that never ran."""
    monkeypatch.setattr(watchdog, "PROCESS_STARTED_AT", NOW - dt.timedelta(days=1))


def scan_completed(at: dt.datetime) -> None:
    TaskRun.objects.create(name=watchdog.SCAN_TASK, last_started_at=at, last_completed_at=at)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# ---------------------------------------------------------------------------
# Recording
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "task,name",
    [
        (tasks.scan_reminders_task, watchdog.SCAN_TASK),
        (tasks.dispatch_reminders_task, watchdog.DISPATCH_TASK),
        (tasks.recover_reminders_task, watchdog.RECOVER_TASK),
    ],
)
def test_each_scheduled_task_records_its_start_and_completion(clock, task, name):
    task()

    run = TaskRun.objects.get(name=name)
    assert (run.last_started_at, run.last_completed_at, run.last_error) == (NOW, NOW, "")


def test_a_second_run_updates_the_same_row_and_clears_the_last_error(clock):
    TaskRun.objects.create(name=watchdog.SCAN_TASK, last_completed_at=NOW - dt.timedelta(hours=1), last_error="Boom")
    clock.shift(dt.timedelta(minutes=5))

    tasks.scan_reminders_task()

    run = TaskRun.objects.get(name=watchdog.SCAN_TASK)
    later = NOW + dt.timedelta(minutes=5)
    assert (run.last_started_at, run.last_completed_at, run.last_error) == (later, later, "")
    assert TaskRun.objects.count() == 1


def test_a_task_that_raises_records_its_error_keeps_its_last_completion_and_re_raises(clock, monkeypatch):
    before = NOW - dt.timedelta(minutes=5)
    scan_completed(before)

    def broken(*, now):
        raise RuntimeError("redis://user:s3cret@broker:6379 refused")

    monkeypatch.setattr(tasks, "reminders_scan", broken)

    with pytest.raises(RuntimeError):
        tasks.scan_reminders_task()

    run = TaskRun.objects.get(name=watchdog.SCAN_TASK)
    assert run.last_started_at == NOW
    assert run.last_completed_at == before
    assert run.last_error == "RuntimeError: redis://***@broker:6379 refused"


# ---------------------------------------------------------------------------
# The selector
# ---------------------------------------------------------------------------
def test_the_period_is_read_from_the_beat_schedule(settings):
    settings.CELERY_BEAT_SCHEDULE = {
        **settings.CELERY_BEAT_SCHEDULE,
        "scan-reminders": {"task": watchdog.SCAN_TASK, "schedule": dt.timedelta(minutes=10)},
    }

    assert watchdog.task_period_seconds(name=watchdog.SCAN_TASK) == 600.0
    assert watchdog.task_period_seconds(name=watchdog.DISPATCH_TASK) == 60.0
    assert watchdog.task_period_seconds(name="no.such_task") is None


@pytest.mark.parametrize(
    "age,overdue",
    [(2 * SCAN_PERIOD, False), (2 * SCAN_PERIOD + dt.timedelta(seconds=1), True)],
    ids=["exactly-twice-the-period", "one-second-more"],
)
def test_a_task_is_overdue_only_after_twice_its_period(clock, started_long_ago, age, overdue):
    scan_completed(NOW - age)

    names = [t.name for t in watchdog.task_list_overdue(now=NOW, watching_since=watchdog.PROCESS_STARTED_AT)]

    assert (watchdog.SCAN_TASK in names) is overdue


def test_a_task_that_never_ran_has_a_grace_period_from_process_start(clock):
    just_started = NOW - dt.timedelta(minutes=9)
    ten_minutes_ago = NOW - dt.timedelta(minutes=10, seconds=1)

    assert watchdog.task_list_overdue(now=NOW, watching_since=just_started, names=(watchdog.SCAN_TASK,)) == []
    assert [t.name for t in watchdog.task_list_overdue(now=NOW, watching_since=ten_minutes_ago)] == [
        watchdog.SCAN_TASK,
        watchdog.DISPATCH_TASK,
        watchdog.RECOVER_TASK,
    ]


def test_the_selector_is_one_query(clock, started_long_ago, django_assert_num_queries):
    scan_completed(NOW)

    with django_assert_num_queries(1):
        watchdog.task_list_overdue(now=NOW, watching_since=watchdog.PROCESS_STARTED_AT)


# ---------------------------------------------------------------------------
# /healthz
# ---------------------------------------------------------------------------
def test_healthz_is_200_with_a_fresh_scan(client, clock, started_long_ago):
    for name in watchdog.WATCHED_TASKS:
        TaskRun.objects.create(name=name, last_completed_at=NOW - dt.timedelta(seconds=30))

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_healthz_is_503_naming_the_scan_when_it_is_older_than_twice_its_period(client, clock, started_long_ago, caplog):
    stale = NOW - 2 * SCAN_PERIOD - dt.timedelta(seconds=1)
    scan_completed(stale)
    for name in (watchdog.DISPATCH_TASK, watchdog.RECOVER_TASK):
        TaskRun.objects.create(name=name, last_completed_at=NOW)

    with caplog.at_level(logging.WARNING, logger="itbclinic.views"):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "ok",
        "broker": "ok",
        "stale_tasks": [watchdog.SCAN_TASK],
        "scan": "stale",
        "scan_last_completed_at": stale.isoformat(),
    }
    assert "refills.scan_reminders_task" in caplog.text


def test_healthz_is_503_when_the_scan_never_ran_long_after_startup(client, clock, started_long_ago):
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["scan"] == "stale"
    assert response.json()["scan_last_completed_at"] is None


def test_healthz_stays_200_but_names_a_stale_dispatcher_while_the_scan_runs(client, clock, started_long_ago):
    scan_completed(NOW)
    TaskRun.objects.create(name=watchdog.RECOVER_TASK, last_completed_at=NOW)
    TaskRun.objects.create(name=watchdog.DISPATCH_TASK, last_completed_at=NOW - dt.timedelta(minutes=3))

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
        "stale_tasks": [watchdog.DISPATCH_TASK],
    }


def test_a_new_install_is_healthy_before_its_first_scan_could_have_run(client, clock, monkeypatch):
    monkeypatch.setattr(watchdog, "PROCESS_STARTED_AT", NOW - dt.timedelta(minutes=1))

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


# ---------------------------------------------------------------------------
# The staff banner
# ---------------------------------------------------------------------------
def test_no_banner_on_staff_pages_while_the_scan_is_fresh(clock, started_long_ago):
    scan_completed(NOW - dt.timedelta(minutes=4))

    response = logged_in(factories.NurseFactory()).get("/staff/")

    assert response.status_code == 200
    assert BANNER not in response.content.decode()


@pytest.mark.parametrize("make_user", [factories.NurseFactory, factories.ClinicianFactory])
def test_staff_pages_show_the_banner_when_the_scan_is_stale(clock, started_long_ago, make_user):
    scan_completed(dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.UTC))

    response = logged_in(make_user()).get("/staff/")

    assert response.status_code == 200
    html = response.content.decode()
    assert (
        '<div class="alert-box danger" role="alert" data-testid="safety-scan-stale"><strong>The safety scan has not '
        "run since 3 Mar 2025, 09:00: reminders and alerts are not being raised. Call IT.</strong></div>"
    ) in html


def test_the_clinic_admin_sees_the_banner_on_staff_pages(clock, started_long_ago):
    response = logged_in(factories.ClinicAdminFactory()).get("/staff/patients/")

    assert response.status_code == 200
    assert "The safety scan has not run since this server started" in response.content.decode()


def test_the_portal_never_shows_the_banner(clock, started_long_ago):
    user = factories.PatientUserFactory()
    patient = factories.PatientFactory(user=user)

    response = logged_in(user).get(f"/portal/p/{patient.pk}/")

    assert response.status_code == 200
    assert BANNER not in response.content.decode()


def test_anonymous_pages_never_show_the_banner(client, clock, started_long_ago):
    response = client.get("/accounts/login/")

    assert response.status_code == 200
    assert BANNER not in response.content.decode()
