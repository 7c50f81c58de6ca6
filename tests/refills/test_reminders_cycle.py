"""Time-machine walk through two refill cycles, across both daylight-saving changes of 2025."""

import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from pumps.models import Drug
from refills.models import Alert, Appointment, Reminder
from tests.helpers import refill_record
from tests.refills.reminder_helpers import LONDON, beat, book, local, refilled_implant

pytestmark = pytest.mark.django_db


def beats(start: dt.datetime, end: dt.datetime, times=((0, 0), (8, 55), (9, 0), (13, 0), (18, 0))):
    """Beat moments from start to end: each local day at midnight, just before and at 09:00, afternoon, evening."""
    day = start.date()
    while day <= end.date():
        for hour, minute in times:
            moment = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=LONDON)
            if start <= moment <= end:
                yield moment
        day += dt.timedelta(days=1)


def walk(moments, patient) -> list[tuple[dt.datetime, int]]:
    """Run a beat at each moment; return (local time, offset) of each reminder the patient got."""
    got = []
    for moment in moments:
        with time_machine.travel(moment, tick=False):
            now = timezone.now()
            before = len(mail.outbox)
            result = beat(now)
            for message in mail.outbox[before:]:
                if message.to == [patient.email]:
                    (row,) = Reminder.objects.filter(status="sent", sent_at=now)
                    got.append((timezone.localtime(now, LONDON), row.offset_days))
            assert "failed" not in result["outcomes"]
    return got


def test_refill_cycle_reminders_at_nine_local_across_dst_changes(nurse, clinician):
    # given a 40 mL pump refilled on 6 Jan 2025 with 2000 mcg/mL at 800 mcg/day:
    # 0.4 mL/day, alarm after 95 days on Fri 11 Apr, due by Sun 6 Apr. The second interval lasts
    # 7 months: this clinic has confirmed from the label that its 2000 mcg/mL product has no cap.
    Drug.objects.filter(concentration_mcg_per_ml=2000).update(max_interval_days=None)
    implant = refilled_implant(nurse=nurse, on=local(2025, 1, 6), reservoir="40", added="40", dose="800")
    assert (implant.forecast_alarm_on, implant.forecast_due_by) == (dt.date(2025, 4, 11), dt.date(2025, 4, 6))
    patient = implant.patient

    # the unbooked alert appears on Sun 16 Mar (21 days before due-by); the nurse books Mon 31 Mar 10:00
    walk([local(2025, 3, 16, 8), local(2025, 3, 16, 9)], patient)
    assert Alert.objects.filter(kind="refill_unbooked", resolved_at__isnull=True).count() == 1
    with time_machine.travel(local(2025, 3, 16, 12), tick=False):
        first = book(implant=implant, nurse=nurse, starts_at=local(2025, 3, 31, 10), now=timezone.now())

    # when the clock runs to the appointment, five beats a day (the clocks go forward on Sun 30 Mar)
    got = walk(beats(local(2025, 3, 16, 13), local(2025, 3, 31, 10)), patient)

    # then two reminders, each at 09:00 on the wall clock: Mon 17 Mar (GMT) and Sat 29 Mar (GMT)
    assert got == [(local(2025, 3, 17, 9), 14), (local(2025, 3, 29, 9), 2)]
    assert Alert.objects.get(kind="refill_unbooked").resolved_at == local(2025, 3, 16, 13)

    # the refill is recorded at the visit: 350 mcg/day now, 0.175 mL/day, alarm Mon 3 Nov, due Wed 29 Oct
    # (prescribed by the clinician, who confirms a fall beyond the clinic's −20 % limit); the nurse
    # aspirates the 6.4 mL the history expects (40 mL − 84 days × 0.4 mL/day): no discrepancy
    with time_machine.travel(local(2025, 3, 31, 10, 20), tick=False):
        refill_record(
            implant=implant,
            by=nurse,
            at=timezone.now(),
            added="40",
            dose="350",
            residual="6.4",
            prescriber=clinician,
            titration_confirmed=True,
        )
    first.refresh_from_db()
    implant.refresh_from_db()
    assert first.status == Appointment.Status.COMPLETED
    assert (implant.forecast_alarm_on, implant.forecast_due_by) == (dt.date(2025, 11, 3), dt.date(2025, 10, 29))

    # nothing over the summer (a beat every other day): no reminder, no alert
    summer = [local(2025, 4, 1, 9) + dt.timedelta(days=2 * i) for i in range(95)] + [local(2025, 10, 7, 9)]
    assert walk(summer, patient) == []
    assert Alert.objects.filter(resolved_at__isnull=True).count() == 0

    # next cycle: alert on Wed 8 Oct, booked for Mon 27 Oct 10:00 (the clocks go back on Sun 26 Oct)
    walk([local(2025, 10, 8, 9)], patient)
    assert Alert.objects.filter(kind="refill_unbooked", key_date=dt.date(2025, 10, 29)).count() == 1
    with time_machine.travel(local(2025, 10, 8, 11), tick=False):
        second = book(implant=implant, nurse=nurse, starts_at=local(2025, 10, 27, 10), now=timezone.now())
    got = walk(beats(local(2025, 10, 8, 12), local(2025, 10, 27, 10)), patient)

    # reminders at 09:00 BST on Mon 13 Oct and Sat 25 Oct, for an appointment at 10:00 GMT
    assert got == [(local(2025, 10, 13, 9), 14), (local(2025, 10, 25, 9), 2)]
    assert [r.send_at.astimezone(dt.UTC).hour for r in Reminder.objects.filter(appointment=second)] == [8, 8]
    # four reminders in all, each sent once, none failed or duplicated
    assert list(Reminder.objects.values_list("status", "send_count")) == [("sent", 1)] * 4
    assert len([m for m in mail.outbox if m.to == [patient.email]]) == 4
