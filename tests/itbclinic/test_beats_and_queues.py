"""Production shape with real processes: scans never wait behind sends, and two beats never double a run.

- Two workers on the embedded filesystem broker, one per queue (as in the Procfile): 200 slow
  sends (0.5 s each: 100 s of work) are queued on "sends", then a scan is queued on "scans"; the
  scan completes within seconds, while most sends still wait.
- Two beat processes with the production scheduler (itbclinic/beat.py) and a 3-second test entry
  run together, then the one sending is killed: every 3-second run is claimed by exactly one of
  them, the other logs the runs it left alone, and the survivor keeps the schedule.
"""

import datetime as dt
import itertools
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from itbclinic.celery import app as celery_app
from refills import watchdog
from refills.models import Reminder, TaskRun
from refills.reminders.dispatch import reminders_dispatch
from refills.reminders.planning import reminders_scan
from refills.tasks import scan_reminders_task, send_reminder_task
from tests import factories
from tests.celery_worker import CeleryWorkerProcess, database_url_for_test_database, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

BASE_DIR = Path(settings.BASE_DIR)
SENDS = 200
SEND_SECONDS = 0.5
SCAN_BOUND_SECONDS = 30


def test_the_routes_send_scans_and_sends_to_their_own_queues():
    router = celery_app.amqp.router
    names = ["refills.send_reminder_task", watchdog.SCAN_TASK, watchdog.DISPATCH_TASK, watchdog.RECOVER_TASK]
    queue_of = {name: router.route({}, name)["queue"].name for name in [*names, "itbclinic.heartbeat_task"]}
    assert queue_of["refills.send_reminder_task"] == settings.CELERY_SENDS_QUEUE == "sends"
    for name in (watchdog.SCAN_TASK, watchdog.DISPATCH_TASK, watchdog.RECOVER_TASK, "itbclinic.heartbeat_task"):
        assert queue_of[name] == settings.CELERY_SCANS_QUEUE == "scans", name
    # every beat entry goes to "scans"; every send (any *.send_*_task) to "sends"
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert router.route({}, entry["task"])["queue"].name == "scans", entry
    assert router.route({}, "portal.send_invitation_email_task")["queue"].name == "sends"


def test_the_filesystem_broker_keeps_queues_apart(tmp_path):
    from kombu import Connection

    (tmp_path / "control").mkdir()
    options = {
        "data_folder_in": str(tmp_path),
        "data_folder_out": str(tmp_path),
        "control_folder": str(tmp_path / "control"),
    }
    # Names of this test's own: kombu keeps exchange bindings in process-wide state, so a queue
    # name another test of this process declared could route elsewhere.
    scans, sends = f"scans-{uuid.uuid4().hex[:6]}", f"sends-{uuid.uuid4().hex[:6]}"
    with Connection("filesystem://", transport_options=options) as conn:
        for queue, body in ((scans, "scan"), (sends, "send-1"), (sends, "send-2")):
            conn.SimpleQueue(queue).put(body)
        assert conn.SimpleQueue(scans).get(timeout=1).payload == "scan"
        assert conn.SimpleQueue(scans).qsize() == 0
        assert conn.SimpleQueue(sends).qsize() == 2


def _due_reminders(count: int) -> list[int]:
    now = timezone.now()
    nurse = factories.NurseFactory()
    for _ in range(count):
        factories.AppointmentFactory(starts_at=now + dt.timedelta(days=20), booked_by=nurse)
    reminders_scan(now=now)
    Reminder.objects.filter(offset_days=14).update(send_at=now - dt.timedelta(minutes=1))
    return list(Reminder.objects.filter(offset_days=14).values_list("pk", flat=True))


def test_a_scan_runs_on_time_behind_a_long_batch_of_slow_sends(celery_worker_factory, tmp_path):
    # given a worker per queue on one filesystem broker (unique queue names: nothing else consumes them)
    scans_q, sends_q = f"scans-{uuid.uuid4().hex[:6]}", f"sends-{uuid.uuid4().hex[:6]}"
    maildir = tmp_path / "mail"
    maildir.mkdir()
    sends = celery_worker_factory()
    sends.env.update(
        EMAIL_BACKEND="tests.refills.reminder_test_backends.FileCountingBackend",
        ITB_TEST_MAILDIR=str(maildir),
        ITB_TEST_MAIL_DELAY=str(SEND_SECONDS),
    )
    scans = CeleryWorkerProcess(env=dict(sends.env), log_path=tmp_path / "scans.log")
    try:
        sends.start(extra_args=("-Q", sends_q))
        scans.start(extra_args=("-Q", scans_q))
        ids = _due_reminders(SENDS)
        assert len(ids) == SENDS

        # when 200 sends are queued (the dispatcher claims them) and the provider takes 0.5 s each
        def enqueue(*, reminder_id: int, claim_token: str) -> None:
            send_reminder_task.apply_async(args=(reminder_id,), kwargs={"claim_token": claim_token}, queue=sends_q)

        claimed = reminders_dispatch(now=timezone.now(), enqueue=enqueue).claimed
        assert len(claimed) == SENDS
        assert wait_until(lambda: len(list(maildir.glob("started-*"))) >= 3, timeout=60), sends.log[-3000:]
        # and then a scan is queued behind them
        queued_at = time.monotonic()
        scan_reminders_task.apply_async(queue=scans_q)

        # then the scan completes within seconds, while the sends are still going
        def scan_done() -> bool:
            return TaskRun.objects.filter(name=watchdog.SCAN_TASK, last_completed_at__isnull=False).exists()

        assert wait_until(scan_done, timeout=SCAN_BOUND_SECONDS), scans.log[-3000:]
        waited = time.monotonic() - queued_at
        delivered = len(list(maildir.glob("*.eml")))
        assert delivered < SENDS / 2, delivered
        print(f"scan completed {waited:.1f} s after it was queued, behind {SENDS - delivered} sends still queued")
    finally:
        scans.stop()


# ---------------------------------------------------------------------------
# Two beats
# ---------------------------------------------------------------------------
PERIOD = 3  # seconds: tests/beat_settings.py's entry
TOGETHER = 7 * PERIOD  # seven runs with both beats up
AFTER_KILL = 5 * PERIOD  # the survivor's next five runs
CLAIM = re.compile(r"beat: claimed tick at (\S+)")
LEFT = re.compile(r"beat: tick at (\S+) already sent by another beat")


class Beat:
    def __init__(self, *, env: dict, work_dir: Path, name: str) -> None:
        self.log_path = work_dir / f"{name}.log"
        self.schedule = work_dir / f"{name}-schedule"
        self.env = env
        self.process: subprocess.Popen | None = None

    def start(self) -> "Beat":
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "itbclinic",
                    "beat",
                    "--loglevel=INFO",
                    f"--schedule={self.schedule}",
                ],
                cwd=BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def claimed(self) -> list[str]:
        return CLAIM.findall(self.log)

    def left(self) -> list[str]:
        return LEFT.findall(self.log)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def test_two_beats_send_each_scheduled_run_once_and_the_survivor_takes_over(tmp_path):
    broker = tmp_path / "broker"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "CELERY_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.beat_settings",
        DATABASE_URL=database_url_for_test_database(),
        CELERY_BROKER_URL="filesystem://",
        CELERY_BROKER_DATA_DIR=str(broker),
        PYTHONPATH=str(BASE_DIR),
        PYTHONUNBUFFERED="1",
    )
    beats = [Beat(env=env, work_dir=tmp_path, name=f"beat{i}") for i in (1, 2)]
    try:
        for beat in beats:
            beat.start()
        # both up: each has made a claim or seen the other's
        assert wait_until(lambda: all(b.claimed() or b.left() for b in beats), timeout=90), beats[0].log[-2000:]
        time.sleep(TOGETHER)  # real processes on the wall clock: seven runs together
        together = [b.claimed() for b in beats]
        all_runs = together[0] + together[1]
        # each run of the period sent once (by one beat), none doubled, the cadence kept
        assert len(all_runs) == len(set(all_runs)), together
        assert len(all_runs) >= TOGETHER // PERIOD - 1, together
        assert sum(len(b.left()) for b in beats) >= 3, "the two beats were not running together"
        # when the beat that sent the last run dies
        active = max(beats, key=lambda b: max(b.claimed(), default=""))
        survivor = beats[1 - beats.index(active)]
        before = set(survivor.claimed())
        active.kill()
        time.sleep(AFTER_KILL)  # the survivor's next five runs
        # then the survivor sends the next runs, still once each
        taken_over = set(survivor.claimed()) - before
        assert len(taken_over) >= AFTER_KILL // PERIOD - 1, survivor.log[-2000:]
        runs = [*active.claimed(), *survivor.claimed()]
        assert len(runs) == len(set(runs))
        slots = sorted(dt.datetime.fromisoformat(s) for s in runs)
        assert all((b - a).total_seconds() % PERIOD == 0 for a, b in itertools.pairwise(slots))
        print(f"two beats: {len(all_runs)} runs together, {len(taken_over)} after the kill, none doubled")
    finally:
        for beat in beats:
            beat.kill()
