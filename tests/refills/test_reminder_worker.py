"""Reminders against a real Celery worker process: killed mid-send, broker restarted, SMTP and database down.

The worker is a subprocess on the test's own database and broker (the filesystem transport
locally, Redis in CI). It consumes a queue of its own, so other workers on the same broker
never take these messages. Its email backend (tests/refills/reminder_test_backends.py, chosen
by the EMAIL_BACKEND environment variable) writes one file per delivered message, which is how
this process counts deliveries across the process boundary.

A minimal worker helper lives here rather than in tests/conftest.py so that these tests control
the worker's environment (email backend, retry timings, queue) at each restart.
"""

import contextlib
import datetime as dt
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from kombu import pools as kombu_pools

from itbclinic.celery import app as celery_app
from refills.alerts.reads import alert_list_open
from refills.models import Alert, DeliveryAttempt, Reminder
from refills.reminders.dispatch import reminders_dispatch, reminders_recover_stuck
from refills.reminders.planning import reminders_scan
from refills.reminders.reads import reminder_figures
from refills.tasks import send_reminder_task
from tests import factories
from tests.conftest import require_service

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

BASE_DIR = Path(settings.BASE_DIR)
REDIS_RESTART = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


def wait_until(predicate, *, timeout: float = 60, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def worker_database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    user = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        user += ":" + quote(db["PASSWORD"], safe="")
    auth = f"{user}@" if user else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{db.get('HOST') or ''}{port}/{quote(db['NAME'], safe='')}"


class Worker:
    """One `celery worker --pool=solo` consuming `queue`; restartable with another environment."""

    def __init__(self, *, queue: str, maildir: Path, log: Path) -> None:
        self.queue, self.maildir, self.log_path = queue, maildir, log
        self.process: subprocess.Popen | None = None

    def start(self, **env_overrides: str) -> "Worker":
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.update(
            DJANGO_SETTINGS_MODULE="itbclinic.settings",
            DATABASE_URL=worker_database_url(),
            CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
            CELERY_BROKER_DATA_DIR=str(settings.CELERY_BROKER_DATA_DIR),
            EMAIL_BACKEND="tests.refills.reminder_test_backends.FileCountingBackend",
            ITB_TEST_MAILDIR=str(self.maildir),
            ITB_TEST_MAIL_DELAY="0",
            REMINDER_RETRY_BACKOFF_SECONDS="1",
            REMINDER_RETRY_BACKOFF_MAX_SECONDS="2",
            REMINDER_SEND_MAX_RETRIES="3",
            PYTHONPATH=str(BASE_DIR),
            PYTHONUNBUFFERED="1",
        )
        env.update(env_overrides)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "itbclinic",
                    "worker",
                    "--pool=solo",
                    "--loglevel=INFO",
                    "-Q",
                    self.queue,
                    f"--hostname=reminders-{uuid.uuid4().hex[:6]}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                cwd=BASE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        assert wait_until(lambda: b" ready." in self._read(offset) or self.process.poll() is not None, timeout=90)
        assert self.process.poll() is None, self.log
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def _read(self, offset: int = 0) -> bytes:
        if not self.log_path.exists():
            return b""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read()

    @property
    def log(self) -> str:
        return self._read().decode(errors="replace")[-6000:]

    def delivered(self) -> int:
        return len(list(self.maildir.glob("*.eml")))

    def started_sends(self) -> int:
        return len(list(self.maildir.glob("started-*")))

    def attempts(self) -> int:
        return len(list(self.maildir.glob("attempt-*")))


@pytest.fixture
def worker(tmp_path):
    maildir = tmp_path / "mail"
    maildir.mkdir()
    queue = f"itb-reminders-test-{uuid.uuid4().hex[:8]}"
    w = Worker(queue=queue, maildir=maildir, log=tmp_path / "worker.log")
    yield w
    w.kill()
    purge_queue(queue)


def purge_queue(queue: str) -> None:
    try:
        with celery_app.connection_for_write() as conn:
            conn.default_channel.queue_purge(queue)
    except Exception:  # noqa: S110 (the queue may not exist, or Redis may be the thing under test)
        pass


def enqueue_on(queue: str):
    """The dispatcher's `enqueue`, publishing to the test worker's own queue after commit."""

    def enqueue(*, reminder_id: int, claim_token: str) -> None:
        def publish_to_test_queue() -> None:
            send_reminder_task.apply_async(args=(reminder_id,), kwargs={"claim_token": claim_token}, queue=queue)

        transaction.on_commit(publish_to_test_queue, robust=True)

    return enqueue


def due_reminders(count: int = 1) -> list[Reminder]:
    """`count` patients booked 20 days ahead, their 14-day reminder made due now (its time has come)."""
    now = timezone.now()
    nurse = factories.NurseFactory()
    for _ in range(count):
        factories.AppointmentFactory(starts_at=now + dt.timedelta(days=20), booked_by=nurse)
    reminders_scan(now=now)
    Reminder.objects.filter(offset_days=14).update(send_at=now - dt.timedelta(minutes=1))
    return list(Reminder.objects.filter(offset_days=14).order_by("id"))


def dispatch(worker: Worker, *, now: dt.datetime | None = None) -> list[int]:
    return reminders_dispatch(now=now or timezone.now(), enqueue=enqueue_on(worker.queue)).claimed


def status(row: Reminder) -> tuple[str, int]:
    row.refresh_from_db()
    return row.status, row.send_count


def test_worker_killed_mid_send_sends_after_restart_and_no_more_than_once_more(worker):
    (row,) = due_reminders()
    # given a worker whose mail server takes 60 s to accept a message
    worker.start(ITB_TEST_MAIL_DELAY="60")
    assert dispatch(worker) == [row.pk]
    assert wait_until(lambda: worker.started_sends() == 1), worker.log
    # when it is SIGKILLed in the middle of the send
    worker.kill()
    assert worker.delivered() == 0
    assert status(row) == ("sending", 0)
    # the attempt was committed before the mail server was called: it stays, with no answer
    assert list(DeliveryAttempt.objects.filter(reminder=row).values_list("outcome", "finished_at")) == [
        ("started", None)
    ]
    # and restarted; ten minutes on, the recovery scan returns the row and the dispatcher sends it again
    worker.start()
    assert reminders_recover_stuck(now=timezone.now() + dt.timedelta(minutes=11)).requeued == 1
    assert dispatch(worker) == [row.pk]
    # then it is delivered, once
    assert wait_until(lambda: status(row) == ("sent", 1)), worker.log
    time.sleep(3)  # a redelivery of the killed message, if any, would land now: it must do nothing
    assert worker.delivered() == 1
    row.refresh_from_db()
    assert (row.status, row.send_count, row.recovered_count, row.attempts) == ("sent", 1, 1, 2)
    # and both hand-overs to the mail server are on record: the killed one may have gone too,
    # so the figures count one (possible) duplicate
    attempts = list(DeliveryAttempt.objects.filter(reminder=row).order_by("id"))
    assert [(a.channel, a.outcome) for a in attempts] == [("email", "started"), ("email", "sent")]
    assert attempts[1].provider_id.startswith("<") and attempts[1].finished_at is not None
    figures = reminder_figures()
    assert (figures.attempts, figures.duplicates, figures.sent, figures.recovered) == (2, 1, 1, 1)


def test_redis_restarted_with_work_queued_loses_nothing(worker):
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        require_service("Redis", "this test restarts the Redis broker (CELERY_BROKER_URL=redis://… in CI)")
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        require_service("redis-server", "not installed")
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=2)
    rows = due_reminders(3)
    # given three sends queued in Redis and no worker to take them
    assert len(dispatch(worker)) == 3
    assert client.llen(worker.queue) == 3
    # when Redis goes down without saving and comes back empty
    try:
        subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"], check=False, timeout=30)
        assert wait_until(lambda: not _redis_up(client), timeout=30)
    finally:
        if not _redis_up(client):
            subprocess.run(REDIS_RESTART, check=True, timeout=30)
        assert wait_until(lambda: _redis_up(client), timeout=30)
    assert client.llen(worker.queue) == 0
    assert [status(row) for row in rows] == [("sending", 0)] * 3
    # this process's broker connections died with the server: drop every pool, start afresh
    kombu_pools.reset()
    celery_app._after_fork()
    # then the worker starts, the recovery scan returns the rows and the dispatcher sends each once
    worker.start()
    assert reminders_recover_stuck(now=timezone.now() + dt.timedelta(minutes=11)).requeued == 3
    assert len(dispatch(worker)) == 3
    assert wait_until(lambda: [status(row) for row in rows] == [("sent", 1)] * 3), worker.log
    assert worker.delivered() == 3


def _redis_up(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def test_smtp_failing_retries_then_fails_and_is_visible_to_nurses(worker):
    (row,) = due_reminders()
    worker.start(EMAIL_BACKEND="tests.refills.reminder_test_backends.FailingFileBackend")
    dispatch(worker)
    assert wait_until(lambda: status(row)[0] == "failed", timeout=90), worker.log
    # one attempt and three retries, with backoff, then failed for good
    assert worker.attempts() == 4
    assert worker.log.count("Retry in") == 3
    row.refresh_from_db()
    assert (row.attempts, row.send_count, row.reason_code) == (4, 0, "failed")
    # four hand-overs, each answered by a failure: none went, so no duplicate
    assert list(DeliveryAttempt.objects.filter(reminder=row).values_list("outcome", flat=True)) == ["error"] * 4
    assert (reminder_figures().attempts, reminder_figures().duplicates) == (4, 0)
    assert "SMTPServerDisconnected" in row.last_error
    (alert,) = alert_list_open(audience="nurses")
    assert (alert.kind, alert.reminder_id) == (Alert.Kind.REMINDER_FAILED, row.pk)
    assert worker.delivered() == 0


def test_database_unavailable_for_a_moment_is_retried_and_nothing_is_stuck(worker):
    (row,) = due_reminders()
    dispatch(worker)  # the send is queued before the outage
    outage = DatabaseOutage()
    outage.begin()
    try:
        worker.start(REMINDER_SEND_MAX_RETRIES="8")
        # the worker takes the message, cannot reach the database, and retries
        assert wait_until(lambda: "OperationalError" in worker.log and "Retry in" in worker.log), worker.log
    finally:
        outage.end()
    assert wait_until(lambda: status(row) == ("sent", 1)), worker.log
    assert worker.delivered() == 1
    assert not Reminder.objects.filter(status__in=["sending", "pending"], offset_days=14).exists()


class DatabaseOutage:
    """PostgreSQL refuses new connections and drops the open ones; SQLite is write-locked."""

    def __init__(self) -> None:
        self.vendor = connection.vendor
        self.lock: sqlite3.Connection | None = None

    def begin(self) -> None:
        if self.vendor == "sqlite":
            self.lock = sqlite3.connect(connection.settings_dict["NAME"], timeout=30, isolation_level=None)
            self.lock.execute("BEGIN IMMEDIATE")
            return
        # ALTER DATABASE … ALLOW_CONNECTIONS is refused from inside the database itself.
        with self._maintenance() as cursor:
            cursor.execute(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS false')
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                [self.name, self.own_pid],
            )

    @property
    def name(self) -> str:
        return connection.settings_dict["NAME"]

    @property
    def own_pid(self) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    @contextlib.contextmanager
    def _maintenance(self):
        import psycopg2

        db = connection.settings_dict
        conn = psycopg2.connect(
            dbname="postgres",
            user=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            host=db.get("HOST") or None,
            port=db.get("PORT") or None,
        )
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                yield cursor
        finally:
            conn.close()

    def end(self) -> None:
        if self.vendor == "sqlite":
            if self.lock is not None:
                self.lock.execute("ROLLBACK")
                self.lock.close()
            return
        with self._maintenance() as cursor:
            cursor.execute(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS true')
