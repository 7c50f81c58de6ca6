"""Celery beat safe to run on several machines (settings.CELERY_BEAT_SCHEDULER).

Run one beat per machine: each sends a due task only after claiming that run in the database
(`refills.watchdog.beat_run_claim`, one conditional UPDATE per run). The run of an entry is named by
its period: an entry every 300 s has one run per 300 s of the clock (floored to the epoch), a
crontab entry one per minute. Two beats never double a run, and when the one that has been
winning the claims dies, the other's next due tick wins it: failover within one period, with no
election and nothing to configure. If the database cannot be reached the run is sent anyway —
every scheduled task is idempotent, and a doubled scan is harmless where a lost one is not.
"""

import datetime as dt
import logging
import math

from celery.beat import PersistentScheduler, ScheduleEntry

logger = logging.getLogger(__name__)


def run_slot(*, entry: ScheduleEntry, now: dt.datetime) -> dt.datetime:
    """The start of the period `now` falls in, for this entry's schedule."""
    run_every = getattr(entry.schedule, "run_every", None)
    period = run_every.total_seconds() if isinstance(run_every, dt.timedelta) else 60.0
    period = max(period, 1.0)
    return dt.datetime.fromtimestamp(math.floor(now.timestamp() / period) * period, tz=dt.UTC)


class ClaimingScheduler(PersistentScheduler):
    """The default scheduler (schedule in code, state in a local shelve file) plus the run claim."""

    def apply_entry(self, entry: ScheduleEntry, producer=None) -> None:
        # Imported here, not at the top: beat loads its scheduler class before Django's app
        # registry is ready (the Django fixup sets it up on the app's first use).
        from refills.watchdog import beat_run_claim

        slot = run_slot(entry=entry, now=dt.datetime.now(tz=dt.UTC))
        try:
            claimed = beat_run_claim(entry=entry.name, slot=slot)
        except Exception:
            logger.exception("beat: could not claim %s at %s; sending it anyway", entry.name, slot.isoformat())
            claimed = True
        if not claimed:
            logger.info("beat: %s at %s already sent by another beat", entry.name, slot.isoformat())
            return
        logger.info("beat: claimed %s at %s", entry.name, slot.isoformat())
        super().apply_entry(entry, producer=producer)
