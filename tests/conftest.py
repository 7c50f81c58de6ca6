"""Shared fixtures: users, the clock, the cache, the password hasher, the SMS outbox, real workers.

Services needed by a test fail (never skip) in CI: see `require_service`. A test directory's own
conftest adds only its own world (rows, moments); it never imports another conftest.
"""

import datetime as dt
import os
from collections.abc import Callable, Iterator

import pytest
import time_machine

from tests import factories

# Run in one xdist process, one after another (`make test` passes --dist loadgroup): they share
# the broker (the Redis of CELERY_BROKER_URL; a worker test purges it, one restarts it) and the
# machine's two cores (Chromium, Celery worker processes).
SERVICES_GROUP = "services"
_SERVICE_MARKERS = ("e2e", "worker")
# Not marked e2e/worker but talking to the configured broker: not while a worker test has it down.
_USES_THE_BROKER = ("tests/itbclinic/test_healthz.py::test_healthy_with_the_configured_database_and_broker",)


# A module whose module-scoped world takes seconds to build: all of it in one xdist process, so
# the world is built once, not once in each (the demo clinic, seeded per date: ~4 s each).
_ONE_PROCESS_MODULES = ("tests/refills/test_demo.py",)


# The longest tests, started first so that neither xdist process is left running one alone at the
# end (`--dist loadgroup` hands out tests in collection order; the services group, the largest
# unit, already goes first). Seconds on the 2-core machine, one process, no other load.
_LONG_FIRST = (
    "tests/refills/test_clinic_year_simulation.py",  # slow: minutes
    "tests/api/test_schemathesis.py",  # slow
    "tests/refills/test_stateful_forecast.py",  # ~30 s: 60 random histories
    "tests/refills/test_reminders_cycle.py",  # ~9 s
    "tests/refills/test_demo.py",  # ~8 s: the demo clinic seeded four times
    "tests/api/test_access.py",  # ~13 s
    "tests/itbclinic/test_page_walk.py",  # slow: every page of the demo clinic, as each role
    "tests/itbclinic/test_seed_demo.py",
    "tests/itbclinic/test_settings.py",  # deploy checks in subprocesses
)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.startswith("tests/e2e/") and not item.get_closest_marker("e2e"):
            # Every test here drives Chromium, whether or not its module says so: out of the fast
            # lane, into the services group.
            item.add_marker(pytest.mark.e2e)
        if any(item.get_closest_marker(name) for name in _SERVICE_MARKERS) or item.nodeid in _USES_THE_BROKER:
            item.add_marker(pytest.mark.xdist_group(SERVICES_GROUP))
        elif (path := item.nodeid.split("::")[0]) in _ONE_PROCESS_MODULES:
            item.add_marker(pytest.mark.xdist_group(path))

    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return _LONG_FIRST.index(path) if path in _LONG_FIRST else len(_LONG_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order


def require_service(name: str, reason: str) -> None:
    """Skip locally when a service is absent; fail in CI (ITB_REQUIRE_SERVICES=1)."""
    message = f"{name} unavailable: {reason}"
    if os.environ.get("ITB_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def nurse(db):
    return factories.NurseFactory()


@pytest.fixture
def clinician(db):
    return factories.ClinicianFactory()


@pytest.fixture
def clinic_admin(db):
    return factories.ClinicAdminFactory()


@pytest.fixture
def patient_user(db):
    return factories.PatientUserFactory()


@pytest.fixture
def password():
    return factories.TEST_PASSWORD


@pytest.fixture
def clock() -> Iterator[Callable[[dt.datetime], dt.datetime]]:
    """The one frozen clock: `clock(moment)` stops time at `moment` until the test ends.

    Calling it again moves the stopped clock. Each test directory's world names its own moment
    (`frozen` fixtures) and freezes it through this.
    """
    travellers: list[time_machine.travel] = []

    def freeze(moment: dt.datetime) -> dt.datetime:
        if travellers:
            travellers.pop().stop()
        traveller = time_machine.travel(moment, tick=False)
        traveller.start()
        travellers.append(traveller)
        return moment

    yield freeze
    for traveller in travellers:
        traveller.stop()


@pytest.fixture(autouse=True)
def _http_and_static_files_for_tests(settings):
    """Three production settings that tests cannot use as they are.

    - The test client and live_server speak plain HTTP: no redirect to HTTPS. Production
      (DEBUG off) redirects every request but /healthz; tests/itbclinic/test_settings.py checks
      that. Cookies stay marked Secure: the test client sends them anyway.
    - The manifest storage needs `collectstatic` to have run: tests serve the source files.
    - Argon2 at production cost makes each user creation and login slow: same algorithm, cheaper
      (tests/hashers.py). The suite's one hasher override: no directory sets its own.
    """
    settings.SECURE_SSL_REDIRECT = False
    settings.PASSWORD_HASHERS = ["tests.hashers.FastArgon2PasswordHasher", *settings.PASSWORD_HASHERS]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def sms_outbox(settings):
    """Text messages go to `refills.messaging.outbox` in tests, emptied per test (like mail.outbox)."""
    from refills import messaging

    settings.SMS_BACKEND = "refills.sms_backends.LocmemBackend"
    messaging.outbox.clear()
    yield messaging.outbox
    messaging.outbox.clear()


@pytest.fixture
def celery_eager():
    """Tasks the code under test enqueues run at once, in this process, for this test only.

    For tests that follow an email end to end through a page (password reset, invitation):
    the code enqueues after commit (`transaction.on_commit` + `.delay()`), so pair it with
    `django_capture_on_commit_callbacks(execute=True)` in a `db` test. Celery is never eager
    globally: other tests call the task functions directly or run a real worker.
    """
    from itbclinic.celery import app

    saved = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture
def celery_worker_factory(transactional_db, tmp_path):
    """Build real Celery workers (tests/celery_worker.py): `factory(broker_url=None)` → not started.

    Transactional, so the worker sees the test's rows: they are committed.

    Default broker: the configured one (filesystem locally, in a folder of this test's own;
    Redis when CELERY_BROKER_URL says so, as in CI). This process publishes to the same broker
    until the test ends; every worker is stopped then, before the database is flushed.
    """
    from django.conf import settings

    from itbclinic.celery import app
    from tests.celery_worker import BrokerSwitch, make_worker

    switch = BrokerSwitch(app)
    workers = []

    def factory(*, broker_url: str | None = None):
        work_dir = tmp_path / f"worker{len(workers)}"
        work_dir.mkdir()
        worker = make_worker(broker_url=broker_url or settings.CELERY_BROKER_URL, work_dir=work_dir, switch=switch)
        workers.append(worker)
        return worker

    yield factory
    for worker in workers:
        worker.stop()
    switch.undo()


@pytest.fixture
def celery_worker_process(celery_worker_factory):
    """A real Celery worker on the configured broker, not started yet: call `.start()`."""
    return celery_worker_factory()


# ---------------------------------------------------------------------------------------------
# The rows the data migrations made (roles and their permissions, catalogues, clinic settings)
# must survive transactional tests: the one mechanism that keeps them. A transactional test ends
# with a flush of every table; without serialized_rollback Django then re-creates content types
# and permissions under new ids (post_migrate), which breaks the next serialized_rollback test's
# restore, and with `--reuse-db` an emptied database would carry into the next run. So: a
# snapshot is taken at the first transactional test of the run (in each xdist process, of its
# own database), and put back after every such flush, before every transactional test, and at
# the end of the run. A run without transactional tests never flushes and never snapshots, and
# a run of pure tests (no `db`) never builds a database at all.
# ---------------------------------------------------------------------------------------------
def _uses_transactions(request) -> bool:
    if "transactional_db" in request.fixturenames:  # also via live_server and the worker fixtures
        return True
    marker = request.node.get_closest_marker("django_db")
    return bool(marker and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])))


def _reconnect_if_dropped() -> None:
    """A test may have cut this process's connection (e.g. a simulated database outage)."""
    from django.db import connection

    if connection.connection is not None and not connection.is_usable():
        connection.close()


def _put_back(snapshot: str) -> None:
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection

    if Group.objects.exists():
        return
    # Flush without post_migrate (which would recreate content types under other ids), then load.
    call_command("flush", verbosity=0, interactive=False, allow_cascade=True, inhibit_post_migrate=True)
    connection.creation.deserialize_db_from_string(snapshot)
    # The rows came back with their own ids: move PostgreSQL's sequences past them (flush restarted
    # them at 1), or the next insert of a catalogue row collides with a restored one.
    from django.apps import apps
    from django.core.management.color import no_style

    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), apps.get_models()):
            cursor.execute(statement)


@pytest.fixture(scope="session")
def _migration_rows(django_db_setup, django_db_blocker):
    from django.apps import apps
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.db.models.signals import post_migrate

    with django_db_blocker.unblock():
        if not Group.objects.exists():
            pytest.exit("The reused test database has lost its migration rows: run once with --create-db.", 3)
        snapshot = connection.creation.serialize_db_to_string()

    def after_flush(**kwargs):
        _put_back(snapshot)

    # post_migrate is sent once per app after a flush: act after the last one.
    last_app = [config for config in apps.get_app_configs() if config.models_module][-1]
    post_migrate.connect(after_flush, sender=last_app, dispatch_uid="tests.put_back_migration_rows")
    yield snapshot
    post_migrate.disconnect(sender=last_app, dispatch_uid="tests.put_back_migration_rows")
    with django_db_blocker.unblock():
        _reconnect_if_dropped()
        _put_back(snapshot)


@pytest.fixture(autouse=True)
def _transactional_tests_start_with_migration_rows(request):
    if _uses_transactions(request):
        snapshot = request.getfixturevalue("_migration_rows")
        with request.getfixturevalue("django_db_blocker").unblock():
            _reconnect_if_dropped()
            _put_back(snapshot)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty cache: rate limits (login, password reset, API) count in it.

    Every test client calls from 127.0.0.1, so without this the login and password-reset limits
    of portal/throttling.py would be spent by earlier tests of the session.
    """
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _safety_scan_has_run(request):
    """Browser tests meet the clinic as it runs: the safety scan has just completed.

    Without it, a live-server test late in a long session would show the watchdog's banner
    (no scan recorded within twice its period of the process start) on every staff page.
    """
    if "live_server" not in request.fixturenames:
        yield
        return
    from django.utils import timezone

    from refills import watchdog
    from refills.models import TaskRun

    request.getfixturevalue("live_server")
    # The snapshot of the migration rows is taken before these rows exist, or every restore
    # after a flush would bring them back into other tests' databases.
    request.getfixturevalue("_migration_rows")
    now = timezone.now()
    for name in watchdog.WATCHED_TASKS:
        TaskRun.objects.update_or_create(name=name, defaults={"last_started_at": now, "last_completed_at": now})
    yield
