"""The watchdog over the safety net: when each scheduled task last ran, and which are overdue.

A missed refill can kill, and the scan that raises reminders and alerts runs only if beat and a
worker are both up. Each watched task records its start and completion in `TaskRun` (one row per
task name); `/healthz` and every staff page read `task_list_overdue` so that a stopped scan is
loud, never silent.

A task is overdue when it has not completed within twice its period (read from
settings.CELERY_BEAT_SCHEDULE: one missed beat is tolerated, two are not). A task that has never
completed is given the same grace counted from `watching_since` — the start of the process that
asks (the web server) — so a brand-new install is not reported stale before its first scan could
have run, and an install whose scan never runs is reported within two periods of each restart.
"""

import datetime as dt
import re
from dataclasses import dataclass

from django.conf import settings
from django.db import models
from django.utils import timezone

from .models import TaskRun

SCAN_TASK = "refills.scan_reminders_task"
DISPATCH_TASK = "refills.dispatch_reminders_task"
RECOVER_TASK = "refills.recover_reminders_task"
# The scan first: it is the one that raises reminders and alerts.
WATCHED_TASKS = (SCAN_TASK, DISPATCH_TASK, RECOVER_TASK)

# A connection error can carry a broker or database URL with its password: never store that.
_CREDENTIALS_IN_URL = re.compile(r"(://)[^@/\s]+@")
MAX_ERROR_CHARS = 2000

# When this process started (read once, at import): the `watching_since` of a task that has
# never completed. Read it as `watchdog.PROCESS_STARTED_AT` at call time, so tests can move it.
PROCESS_STARTED_AT = timezone.now()


# ---------------------------------------------------------------------------
# Writes (one upsert each, outside any transaction of the task: the record must survive a rollback)
# ---------------------------------------------------------------------------
def _upsert(*, name: str, fields: dict) -> None:
    TaskRun.objects.bulk_create(
        [TaskRun(name=name, **fields)],
        update_conflicts=True,
        unique_fields=["name"],
        update_fields=list(fields),
    )


def task_run_start(*, name: str, now: dt.datetime) -> None:
    _upsert(name=name, fields={"last_started_at": now})


def task_run_complete(*, name: str, now: dt.datetime) -> None:
    _upsert(name=name, fields={"last_completed_at": now, "last_error": ""})


def task_run_fail(*, name: str, error: BaseException) -> None:
    """Keep the last completion as it was (the task did not complete) and say why it stopped."""
    message = _CREDENTIALS_IN_URL.sub(r"\1***@", f"{type(error).__name__}: {error}")
    _upsert(name=name, fields={"last_error": message[:MAX_ERROR_CHARS]})


# ---------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------
def task_period_seconds(*, name: str) -> float | None:
    """The beat period of the task named `name`, or None if beat does not run it on an interval."""
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        if entry.get("task") != name:
            continue
        schedule = entry["schedule"]
        if isinstance(schedule, int | float):
            return float(schedule)
        if isinstance(schedule, dt.timedelta):
            return schedule.total_seconds()
        run_every = getattr(schedule, "run_every", None)  # celery.schedules.schedule
        if isinstance(run_every, dt.timedelta):
            return run_every.total_seconds()
    return None


@dataclass(frozen=True, slots=True)
class OverdueTask:
    name: str
    period_seconds: float
    last_completed_at: dt.datetime | None
    last_error: str

    @property
    def is_scan(self) -> bool:
        return self.name == SCAN_TASK


def task_list_overdue(
    *, now: dt.datetime, watching_since: dt.datetime, names: tuple[str, ...] = WATCHED_TASKS
) -> list[OverdueTask]:
    """The watched tasks (in `names` order) that have not completed within twice their period: one query."""
    periods = {name: period for name in names if (period := task_period_seconds(name=name)) is not None}
    if not periods:
        return []
    rows = {
        row["name"]: row
        for row in TaskRun.objects.filter(name__in=periods).values("name", "last_completed_at", "last_error")
    }
    overdue = []
    for name, period in periods.items():
        row = rows.get(name, {})
        completed = row.get("last_completed_at")
        since = completed if completed is not None else watching_since
        if now - since > dt.timedelta(seconds=2 * period):
            overdue.append(
                OverdueTask(
                    name=name, period_seconds=period, last_completed_at=completed, last_error=row.get("last_error", "")
                )
            )
    return overdue


def scan_get_overdue(*, now: dt.datetime, watching_since: dt.datetime) -> OverdueTask | None:
    """The scan, if it is overdue (the staff banner's one cheap query)."""
    overdue = task_list_overdue(now=now, watching_since=watching_since, names=(SCAN_TASK,))
    return overdue[0] if overdue else None


# ---------------------------------------------------------------------------
# Beat on several machines: each scheduled run is claimed once, in the database
# ---------------------------------------------------------------------------
BEAT_CLAIM_PREFIX = "beat:"


def beat_run_claim(*, entry: str, slot: dt.datetime) -> bool:
    """Claim the run of beat entry `entry` for the period starting at `slot`: True for exactly one caller.

    Several beat processes (one per machine, for failover) run the same schedule; before sending
    a due task each claims its period here and sends only if the claim is theirs, so two beats
    never double a run and, when one dies, the next period goes to a beat still alive. The claim
    is one conditional UPDATE on the entry's TaskRun row (`beat:<entry>`, its `last_started_at`
    the last period claimed): the database serialises concurrent claims on the row.
    """
    name = f"{BEAT_CLAIM_PREFIX}{entry}"
    TaskRun.objects.bulk_create([TaskRun(name=name)], ignore_conflicts=True)
    unclaimed = TaskRun.objects.filter(name=name).filter(
        models.Q(last_started_at__isnull=True) | models.Q(last_started_at__lt=slot)
    )
    return unclaimed.update(last_started_at=slot) == 1
