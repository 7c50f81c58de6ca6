"""When a reminder goes: send-time arithmetic in clinic-local terms.

A reminder goes at `reminder_hour` clinic-local time, `offset_days` before the local date of the
appointment, whatever the daylight-saving offset of either day.
"""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.utils import timezone

from core.formatting import format_day

from ..clinic_time import clinic_tz
from ..models import Reminder


# ---------------------------------------------------------------------------
# When a reminder goes
# ---------------------------------------------------------------------------
def reminder_send_at(*, starts_at: dt.datetime, offset_days: int, hour: int) -> dt.datetime:
    """`hour`:00 clinic-local time, `offset_days` before the appointment's clinic-local date.

    The date is computed in local terms first and only then made aware, so a reminder two days
    before a Monday-after-the-clocks-change appointment still goes at 09:00 on the wall clock.
    """
    tz = clinic_tz()
    day = starts_at.astimezone(tz).date() - dt.timedelta(days=offset_days)
    return dt.datetime.combine(day, dt.time(hour), tzinfo=tz)


@dataclass(frozen=True, slots=True)
class PlannedReminder:
    offset_days: int
    send_at: dt.datetime
    status: str
    reason_code: str = ""
    status_reason: str = ""


def reminder_plan(
    *,
    starts_at: dt.datetime,
    offsets: Iterable[int],
    hour: int,
    now: dt.datetime,
    min_lead: dt.timedelta,
    late_grace: dt.timedelta = dt.timedelta(hours=6),
) -> list[PlannedReminder]:
    """Which reminders an appointment gets, decided when its rows are created.

    An offset whose time is ahead, or passed less than `late_grace` ago (the scan runs every few
    minutes, a booking may land just after 09:00), is pending. One whose time passed longer ago
    (a late booking) is skipped as stale, except that when no offset is left ahead the closest
    one goes at once, as a catch-up, provided the appointment is at least `min_lead` away: a
    patient booked tomorrow gets one reminder now, never a "14 days" one.
    """
    times = sorted(
        ((offset, reminder_send_at(starts_at=starts_at, offset_days=offset, hour=hour)) for offset in set(offsets)),
        reverse=True,
    )
    on_time = {offset for offset, send_at in times if send_at > now - late_grace}
    past = [offset for offset, _ in times if offset not in on_time]
    catch_up = min(past) if past and not on_time and starts_at - now >= min_lead else None
    plan = []
    for offset, send_at in times:
        if offset in on_time or offset == catch_up:
            plan.append(PlannedReminder(offset, send_at, Reminder.Status.PENDING))
        else:
            local = timezone.localtime(send_at, clinic_tz())
            plan.append(
                PlannedReminder(
                    offset,
                    send_at,
                    Reminder.Status.CANCELLED,
                    Reminder.ReasonCode.STALE,
                    f"Not sent: booked after its time ({format_day(local, 'j M H:i')}); a closer reminder covers it.",
                )
            )
    return plan
