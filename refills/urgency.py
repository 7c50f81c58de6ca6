"""How urgent a refill is: the one classification the worklist, the alert scan and the pages use.

Pure (no ORM, no clock): the pump's stored forecast dates, "today" and the clinic's two alert
windows in, a small frozen value out. The worklist sorts and badges by `level`; the alert scan
raises REFILL_UNBOOKED when `due_soon`, makes it urgent when `overdue`, and raises REFILL_URGENT
when `alarm_near`; templates show these values and never compare a threshold themselves.
"""

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum


class Urgency(StrEnum):
    OVERDUE = "overdue"
    URGENT = "urgent"
    SOON = "soon"
    LATER = "later"


@dataclass(frozen=True, slots=True)
class RefillUrgency:
    days_to_due: int
    days_to_alarm: int | None
    # Past the due-by date.
    overdue: bool
    # The due-by date falls within `unbooked_alert_days` (or has passed).
    due_soon: bool
    # The alarm date falls within `urgent_alert_days` (or has passed).
    alarm_near: bool
    level: Urgency


def refill_urgency_classify(
    *, due_by: dt.date, alarm_on: dt.date | None, today: dt.date, unbooked_alert_days: int, urgent_alert_days: int
) -> RefillUrgency:
    """Overdue after the due-by date; urgent when due today or the alarm is `urgent_alert_days`
    away or less; soon within `unbooked_alert_days` of the due-by date; later otherwise."""
    days_to_due = (due_by - today).days
    days_to_alarm = (alarm_on - today).days if alarm_on is not None else None
    overdue = days_to_due < 0
    due_soon = days_to_due <= unbooked_alert_days
    alarm_near = days_to_alarm is not None and days_to_alarm <= urgent_alert_days
    if overdue:
        level = Urgency.OVERDUE
    elif days_to_due == 0 or alarm_near:
        level = Urgency.URGENT
    elif due_soon:
        level = Urgency.SOON
    else:
        level = Urgency.LATER
    return RefillUrgency(
        days_to_due=days_to_due,
        days_to_alarm=days_to_alarm,
        overdue=overdue,
        due_soon=due_soon,
        alarm_near=alarm_near,
        level=level,
    )
