"""The clinic's time zone and where its days begin: the one home of both.

Clinical dates are clinic-local `DateField`s and appointments aware datetimes (STYLE.md 6); every
conversion between the two goes through these, in `settings.TIME_ZONE`, whatever the zone a
request or a worker happens to run in.
"""

import datetime as dt
from zoneinfo import ZoneInfo

from django.conf import settings


def clinic_tz() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def clinic_day_start(day: dt.date) -> dt.datetime:
    """Midnight at the start of `day`, clinic-local (aware)."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=clinic_tz())
